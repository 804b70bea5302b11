// Texture (Texture2D, RenderTexture, WebCamTexture) -> JPEG/PNG bytes to send as a photo.
// Works for textures that are not CPU-readable or are compressed: the GPU blits them into
// a temporary RenderTexture, which is read back. Photos stay in memory (never written to disk).
// NOT compiled in this repository's CI (it needs UnityEngine); see README.md.
using System;
using System.Threading;
using System.Threading.Tasks;
using ChibiAvatar.Protocol;
using UnityEngine;

namespace ChibiAvatar
{
    public static class ChibiImageEncoding
    {
        /// <summary>JPEG bytes of <paramref name="texture"/>, longer side at most <paramref name="maxSide"/> pixels.</summary>
        /// <param name="quality">JPEG quality 1..100</param>
        public static byte[] EncodeToJpg(Texture texture, int quality = 90, int maxSide = 2048)
        {
            Texture2D copy = ReadableCopy(texture, maxSide);
            try { return copy.EncodeToJPG(Mathf.Clamp(quality, 1, 100)); }
            finally { DestroyObject(copy); }
        }

        /// <summary>PNG bytes (lossless, larger) of <paramref name="texture"/>.</summary>
        public static byte[] EncodeToPng(Texture texture, int maxSide = 2048)
        {
            Texture2D copy = ReadableCopy(texture, maxSide);
            try { return copy.EncodeToPNG(); }
            finally { DestroyObject(copy); }
        }

        /// <summary>
        /// A CPU-readable RGB24 copy, downscaled so the longer side is at most maxSide, upright:
        /// a WebCamTexture's videoRotationAngle and vertical mirroring are undone. Destroy it after use.
        /// </summary>
        public static Texture2D ReadableCopy(Texture source, int maxSide = 2048)
        {
            if (source == null) throw new ArgumentNullException(nameof(source));
            if (source.width < 1 || source.height < 1) throw new ArgumentException("the texture has no pixels (a webcam that has not started yet?)");
            float scale = Mathf.Min(1f, (float)maxSide / Mathf.Max(source.width, source.height));
            int width = Mathf.Max(1, Mathf.RoundToInt(source.width * scale));
            int height = Mathf.Max(1, Mathf.RoundToInt(source.height * scale));
            var webcam = source as WebCamTexture;
            bool mirrored = webcam != null && webcam.videoVerticallyMirrored;
            var target = RenderTexture.GetTemporary(width, height, 0, RenderTextureFormat.ARGB32, RenderTextureReadWrite.sRGB);
            var previous = RenderTexture.active;
            try
            {
                // A negative y scale flips a vertically mirrored camera image while blitting.
                if (mirrored) Graphics.Blit(source, target, new Vector2(1, -1), new Vector2(0, 1));
                else Graphics.Blit(source, target);
                RenderTexture.active = target;
                var copy = new Texture2D(width, height, TextureFormat.RGB24, false);
                copy.ReadPixels(new Rect(0, 0, width, height), 0, 0);
                copy.Apply();
                int angle = webcam != null ? ((webcam.videoRotationAngle % 360) + 360) % 360 : 0;
                return angle == 0 ? copy : Rotate(copy, angle);
            }
            finally
            {
                RenderTexture.active = previous;
                RenderTexture.ReleaseTemporary(target);
            }
        }

        /// <summary>Rotates clockwise by the camera's videoRotationAngle (90, 180, 270; y-up pixel rows) so the face is upright.</summary>
        static Texture2D Rotate(Texture2D source, int clockwiseAngle)
        {
            int w = source.width, h = source.height;
            Color32[] from = source.GetPixels32();
            bool quarter = clockwiseAngle == 90 || clockwiseAngle == 270;
            int outW = quarter ? h : w, outH = quarter ? w : h;
            var to = new Color32[from.Length];
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    int nx, ny;
                    if (clockwiseAngle == 90) { nx = y; ny = w - 1 - x; }        // (x, y) -> (y, -x), shifted
                    else if (clockwiseAngle == 180) { nx = w - 1 - x; ny = h - 1 - y; }
                    else { nx = h - 1 - y; ny = x; }                               // (x, y) -> (-y, x), shifted
                    to[ny * outW + nx] = from[y * w + x];
                }
            var rotated = new Texture2D(outW, outH, TextureFormat.RGB24, false);
            rotated.SetPixels32(to);
            rotated.Apply();
            DestroyObject(source);
            return rotated;
        }

        static void DestroyObject(UnityEngine.Object obj)
        {
            if (Application.isPlaying) UnityEngine.Object.Destroy(obj);
            else UnityEngine.Object.DestroyImmediate(obj);
        }
    }

    /// <summary>Unity conveniences on top of the UnityEngine-free client.</summary>
    public static class ChibiAvatarClientUnityExtensions
    {
        /// <summary>
        /// Encodes <paramref name="texture"/> as JPEG (on the calling thread, which must be the main
        /// thread) and sends it as a photo request. The JPEG stays in memory.
        /// </summary>
        public static Task<ChibiAvatarResult> GenerateFromTextureAsync(this ChibiAvatarClient client, Texture texture,
            ChibiRequestOptions options = null, Action<ChibiProgress> onProgress = null,
            CancellationToken cancellationToken = default(CancellationToken), int jpegQuality = 90)
        {
            byte[] jpeg = ChibiImageEncoding.EncodeToJpg(texture, jpegQuality);
            return client.GenerateFromPhotoAsync(jpeg, options, onProgress, cancellationToken);
        }
    }
}
