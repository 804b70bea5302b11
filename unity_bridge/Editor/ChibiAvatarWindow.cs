// Window > Chibi Avatar: pick a photo (or a webcam frame in play mode, or AvatarParams JSON),
// send it to the chibi-avatar server, save the returned .vrm/.glb under Assets/ and place it
// in the open scene.
// NOT compiled in this repository's CI (it needs the Unity editor); see README.md.
using System;
using System.IO;
using System.Text.RegularExpressions;
using System.Threading;
using System.Threading.Tasks;
using ChibiAvatar.Protocol;
using UnityEditor;
using UnityEditor.SceneManagement;
using UnityEngine;

namespace ChibiAvatar.EditorTools
{
    public sealed class ChibiAvatarWindow : EditorWindow
    {
        enum Source { PhotoFile, Webcam, Params }

        const string PrefsPrefix = "ChibiAvatar.";
        static readonly string[] FormatNames = { "vrm1", "vrm0", "glb" };
        static readonly string[] FormatLabels = { "VRM 1.0", "VRM 0.x", "glTF (.glb)" };
        static readonly string[] QualityNames = { "default", "high" };

        string url;
        string token; // kept in EditorPrefs (this machine's user settings), never in the project
        string outputFolder;
        string photoPath = "";
        string paramsJson = "{\n  \"hair_style\": \"bob\"\n}";
        Source source;
        int formatIndex;
        int qualityIndex;
        WebCamTexture webcam;
        Texture2D webcamFrame;
        CancellationTokenSource running;
        string status = "";
        float progress;
        Vector2 scroll;

        [MenuItem("Window/Chibi Avatar")]
        static void Open()
        {
            GetWindow<ChibiAvatarWindow>("Chibi Avatar");
        }

        void OnEnable()
        {
            url = EditorPrefs.GetString(PrefsPrefix + "Url", ChibiProtocol.DefaultUrl);
            token = EditorPrefs.GetString(PrefsPrefix + "Token", "");
            outputFolder = EditorPrefs.GetString(PrefsPrefix + "Folder", "Assets/ChibiAvatars");
            formatIndex = EditorPrefs.GetInt(PrefsPrefix + "Format", 0);
        }

        void OnDisable()
        {
            EditorPrefs.SetString(PrefsPrefix + "Url", url);
            EditorPrefs.SetString(PrefsPrefix + "Token", token);
            EditorPrefs.SetString(PrefsPrefix + "Folder", outputFolder);
            EditorPrefs.SetInt(PrefsPrefix + "Format", formatIndex);
            if (running != null) running.Cancel();
            StopWebcam();
            if (webcamFrame != null) DestroyImmediate(webcamFrame);
        }

        void OnGUI()
        {
            scroll = EditorGUILayout.BeginScrollView(scroll);
            EditorGUILayout.LabelField("Server", EditorStyles.boldLabel);
            url = EditorGUILayout.TextField("URL", url);
            token = EditorGUILayout.PasswordField("Token", token);

            EditorGUILayout.Space();
            EditorGUILayout.LabelField("Input", EditorStyles.boldLabel);
            source = (Source)EditorGUILayout.EnumPopup("Source", source);
            if (source == Source.PhotoFile) PhotoGui();
            else if (source == Source.Webcam) WebcamGui();
            else paramsJson = EditorGUILayout.TextArea(paramsJson, GUILayout.MinHeight(80));

            EditorGUILayout.Space();
            EditorGUILayout.LabelField("Output", EditorStyles.boldLabel);
            formatIndex = EditorGUILayout.Popup("Format", formatIndex, FormatLabels);
            qualityIndex = EditorGUILayout.Popup("Quality", qualityIndex, QualityNames);
            outputFolder = EditorGUILayout.TextField("Save under", outputFolder);
            EditorGUILayout.LabelField("Loader", ChibiAvatarLoader.Backend);

            EditorGUILayout.Space();
            using (new EditorGUI.DisabledScope(running != null || !InputReady()))
                if (GUILayout.Button("Generate into the open scene", GUILayout.Height(28))) Generate();
            if (running != null && GUILayout.Button("Cancel")) running.Cancel();
            if (running != null || status.Length > 0)
            {
                var rect = EditorGUILayout.GetControlRect(false, 18);
                EditorGUI.ProgressBar(rect, progress, status);
            }
            EditorGUILayout.EndScrollView();
        }

        void PhotoGui()
        {
            using (new EditorGUILayout.HorizontalScope())
            {
                EditorGUILayout.TextField("Photo", photoPath);
                if (GUILayout.Button("Choose...", GUILayout.Width(80)))
                {
                    string picked = EditorUtility.OpenFilePanelWithFilters("Face photo", "",
                        new[] { "Images", "jpg,jpeg,png,webp,bmp,gif,heic,heif,avif", "All files", "*" });
                    if (!string.IsNullOrEmpty(picked)) photoPath = picked;
                }
            }
        }

        void WebcamGui()
        {
            if (!EditorApplication.isPlaying)
            {
                EditorGUILayout.HelpBox("Webcam capture works in play mode: press Play, then capture a frame here.", MessageType.Info);
                return;
            }
            if (webcam == null)
            {
                if (GUILayout.Button("Start webcam"))
                {
                    webcam = new WebCamTexture(1280, 720);
                    webcam.Play();
                }
                return;
            }
            Repaint(); // keep the live preview moving
            var rect = GUILayoutUtility.GetAspectRect(16f / 9f, GUILayout.MaxHeight(240));
            GUI.DrawTexture(rect, webcamFrame != null ? (Texture)webcamFrame : webcam, ScaleMode.ScaleToFit);
            using (new EditorGUILayout.HorizontalScope())
            {
                if (GUILayout.Button(webcamFrame == null ? "Capture frame" : "Capture again"))
                {
                    if (webcamFrame != null) DestroyImmediate(webcamFrame);
                    webcamFrame = ChibiImageEncoding.ReadableCopy(webcam);
                }
                if (GUILayout.Button("Stop webcam")) StopWebcam();
            }
        }

        void StopWebcam()
        {
            if (webcam == null) return;
            webcam.Stop();
            DestroyImmediate(webcam);
            webcam = null;
        }

        bool InputReady()
        {
            if (source == Source.PhotoFile) return File.Exists(photoPath);
            if (source == Source.Webcam) return webcamFrame != null;
            return paramsJson.Trim().Length > 0;
        }

        async void Generate()
        {
            running = new CancellationTokenSource();
            progress = 0;
            status = "connecting";
            var options = new ChibiRequestOptions { Format = FormatNames[formatIndex], Quality = QualityNames[qualityIndex] };
            Action<ChibiProgress> onProgress = p =>
            {
                int stage = p.StageIndex;
                if (stage >= 0) progress = (stage + 1f) / (ChibiProtocol.Stages.Length + 1f);
                status = p.Stage + " (" + (p.ElapsedMs / 1000.0).ToString("0.0") + " s)";
                Repaint();
            };
            try
            {
                using (var client = await ChibiAvatarClient.ConnectAsync(url, string.IsNullOrEmpty(token) ? null : token, null, running.Token))
                {
                    if (source != Source.Params && !client.Welcome.PhotoAvailable)
                        throw new ChibiProtocolException(ChibiErrorCodes.NotAvailable, "this server cannot read photos yet; use Source = Params");
                    status = "sending";
                    Repaint();
                    ChibiAvatarResult result;
                    if (source == Source.PhotoFile)
                        result = await client.GenerateFromPhotoAsync(File.ReadAllBytes(photoPath), options, onProgress, running.Token);
                    else if (source == Source.Webcam)
                        result = await client.GenerateFromTextureAsync(webcamFrame, options, onProgress, running.Token);
                    else
                        result = await client.GenerateFromParamsAsync(paramsJson, options, onProgress, running.Token);
                    await client.CloseAsync();
                    await Place(result);
                }
            }
            catch (OperationCanceledException)
            {
                status = "cancelled";
            }
            catch (ChibiProtocolException e)
            {
                status = "failed: " + e.Code;
                Debug.LogError("Chibi Avatar: " + e.Message + (e.Field != null ? " (field " + e.Field + ")" : ""));
            }
            catch (Exception e)
            {
                status = "failed: " + e.GetType().Name;
                Debug.LogException(e);
            }
            finally
            {
                running.Dispose();
                running = null;
                Repaint();
            }
        }

        /// <summary>Saves the file as an asset, then places the imported prefab (or a runtime load) in the scene.</summary>
        async Task Place(ChibiAvatarResult result)
        {
            string baseName = source == Source.PhotoFile ? Path.GetFileNameWithoutExtension(photoPath)
                : source == Source.Webcam ? "webcam" : "params";
            baseName = "chibi_" + Regex.Replace(baseName, "[^A-Za-z0-9_-]", "_");
            if (!outputFolder.StartsWith("Assets", StringComparison.Ordinal)) outputFolder = "Assets/ChibiAvatars";
            Directory.CreateDirectory(outputFolder);
            string path = AssetDatabase.GenerateUniqueAssetPath(outputFolder + "/" + baseName + result.FileExtension);
            File.WriteAllBytes(path, result.Model);
            AssetDatabase.ImportAsset(path);
            progress = 1;
            status = "saved " + path;

            // UniVRM and glTFast import .vrm/.glb assets as prefabs; an instance of the prefab keeps
            // its meshes when the scene is saved. Without an importer, load at run time instead.
            GameObject placed;
            var prefab = AssetDatabase.LoadAssetAtPath<GameObject>(path);
            if (prefab != null)
                placed = (GameObject)PrefabUtility.InstantiatePrefab(prefab);
            else
            {
                placed = await ChibiAvatarLoader.LoadAsync(result.Model, null, baseName);
                Debug.LogWarning("Chibi Avatar: no importer made a prefab of " + path + "; the avatar in the scene was loaded in memory "
                    + "and its meshes are not saved with the scene. Install UniVRM/glTFast importers, or drag the asset in.");
            }
            Undo.RegisterCreatedObjectUndo(placed, "Generate chibi avatar");
            Selection.activeGameObject = placed;
            EditorSceneManager.MarkSceneDirty(placed.scene);
            Debug.Log("Chibi Avatar: " + result.Format + ", " + result.Model.Length + " bytes, saved as " + path);
        }
    }
}
