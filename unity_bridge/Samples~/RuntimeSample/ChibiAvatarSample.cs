// Runtime sample: add this component to an empty GameObject in a scene with a camera, press
// Play, then "Generate" (a Texture2D photo you assign) or "Webcam" (a frame of the first camera).
// The avatar the server returns is placed at this GameObject's position; "Generate" again
// replaces it. Keys: G = generate from the photo, W = webcam frame, C = cancel, P = from params.
// NOT compiled in this repository's CI (it needs UnityEngine); see the package README.
using System;
using System.Threading;
using ChibiAvatar.Protocol;
using UnityEngine;

namespace ChibiAvatar.Samples
{
    public sealed class ChibiAvatarSample : MonoBehaviour
    {
        [Tooltip("ws://HOST:PORT/ws of `chibi serve`")]
        public string serverUrl = ChibiProtocol.DefaultUrl;
        [Tooltip("Bearer token, when the server has tokens configured")]
        public string token = "";
        [Tooltip("A face photo (any texture; it need not be readable)")]
        public Texture2D photo;
        [Tooltip("AvatarParams JSON used by 'From params' (works before the server has photo models)")]
        [TextArea] public string paramsJson = "{\"hair_style\": \"twintails\", \"hair_color\": \"#ff88aa\"}";
        public string format = "vrm1";

        ChibiAvatarClient client;
        CancellationTokenSource running;
        WebCamTexture webcam;
        GameObject avatar;
        string status = "idle";

        async void Start()
        {
            try
            {
                // Connected from the main thread: progress callbacks come back on it.
                client = await ChibiAvatarClient.ConnectAsync(serverUrl, string.IsNullOrEmpty(token) ? null : token);
                status = "connected to " + client.Welcome.Server + (client.Welcome.PhotoAvailable ? "" : " (params only)");
            }
            catch (ChibiProtocolException e)
            {
                status = "connect failed: " + e.Code;
                Debug.LogError(e.Message);
            }
        }

        void Update()
        {
            if (Input.GetKeyDown(KeyCode.G) && photo != null) Generate(photo);
            if (Input.GetKeyDown(KeyCode.W)) CaptureWebcam();
            if (Input.GetKeyDown(KeyCode.P)) Generate(null);
            if (Input.GetKeyDown(KeyCode.C) && running != null) running.Cancel();
        }

        void OnGUI()
        {
            GUILayout.BeginArea(new Rect(10, 10, 360, 220), GUI.skin.box);
            GUILayout.Label("Chibi Avatar - " + status);
            GUI.enabled = client != null && running == null;
            if (photo != null && GUILayout.Button("Generate from photo (G)")) Generate(photo);
            if (GUILayout.Button(webcam == null ? "Start webcam (W)" : "Use webcam frame (W)")) CaptureWebcam();
            if (GUILayout.Button("From params (P)")) Generate(null);
            GUI.enabled = running != null;
            if (GUILayout.Button("Cancel (C)")) running.Cancel();
            GUI.enabled = true;
            GUILayout.EndArea();
        }

        void CaptureWebcam()
        {
            if (webcam == null)
            {
                webcam = new WebCamTexture(1280, 720);
                webcam.Play(); // the next press sends a frame, once the camera delivers one
                status = "webcam started";
                return;
            }
            if (webcam.didUpdateThisFrame || webcam.width > 16) Generate(webcam);
        }

        /// <summary>Photo (any Texture) or, when null, the params JSON -> avatar in the scene.</summary>
        async void Generate(Texture source)
        {
            if (client == null || running != null) return;
            running = new CancellationTokenSource();
            // loaded into the scene, never shown in a picker: no VRM thumbnail to render
            var options = new ChibiRequestOptions { Format = format, Thumbnail = false };
            Action<ChibiProgress> onProgress = p => status = p.Stage + " " + p.ElapsedMs.ToString("0") + " ms";
            try
            {
                ChibiAvatarResult result = source != null
                    ? await client.GenerateFromTextureAsync(source, options, onProgress, running.Token)
                    : await client.GenerateFromParamsAsync(paramsJson, options, onProgress, running.Token);
                if (avatar != null) Destroy(avatar);
                avatar = await ChibiAvatarLoader.LoadAsync(result.Model, transform, "ChibiAvatar", running.Token);
                status = "loaded " + result.Format + " (" + (result.Model.Length / 1024) + " KiB) with " + ChibiAvatarLoader.Backend;
            }
            catch (OperationCanceledException)
            {
                status = "cancelled";
            }
            catch (ChibiProtocolException e)
            {
                // Stable codes: no_face, face_too_small, face_too_rotated, busy, rate_limited...
                status = "error " + e.Code;
                Debug.LogWarning(e.Message);
            }
            catch (NotSupportedException e)
            {
                status = "install UniVRM or glTFast";
                Debug.LogError(e.Message);
            }
            finally
            {
                running.Dispose();
                running = null;
            }
        }

        void OnDestroy()
        {
            if (running != null) running.Cancel();
            if (webcam != null) webcam.Stop();
            if (client != null) client.Dispose();
        }
    }
}
