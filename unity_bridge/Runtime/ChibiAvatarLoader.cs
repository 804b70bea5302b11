// Turns the bytes the server returned (.vrm / .glb) into a GameObject in the open scene.
//
// Backends, chosen at compile time by the Runtime asmdef's versionDefines:
//   CHIBI_UNIVRM  - UniVRM (com.vrmc.vrm): VRM 1.0 and 0.x (migrated) with MToon, spring bones,
//                   expressions; plain glb through UniGLTF.
//   CHIBI_GLTFAST - glTFast (com.unity.cloud.gltfast): plain glTF; a VRM loads as its glTF
//                   content (mesh, skin, morph targets, unlit fallback material), without VRM features.
// Neither: LoadAsync throws NotSupportedException saying what to install.
// NOT compiled in this repository's CI (it needs UnityEngine); see README.md.
using System;
using System.Threading;
using System.Threading.Tasks;
using ChibiAvatar.Protocol;
using UnityEngine;
#if CHIBI_UNIVRM
using UniGLTF;
using UniVRM10;
#endif
#if CHIBI_GLTFAST
using GLTFast;
#endif

namespace ChibiAvatar
{
    public static class ChibiAvatarLoader
    {
        /// <summary>The backend compiled in: "UniVRM", "glTFast", "UniVRM+glTFast" or "none".</summary>
        public static string Backend
        {
            get
            {
#if CHIBI_UNIVRM && CHIBI_GLTFAST
                return "UniVRM+glTFast";
#elif CHIBI_UNIVRM
                return "UniVRM";
#elif CHIBI_GLTFAST
                return "glTFast";
#else
                return "none";
#endif
            }
        }

        /// <summary>
        /// Loads a .vrm/.glb file from memory into a new root GameObject under <paramref name="parent"/>
        /// (scene root when null). Call on the main thread. Throws FormatException for bytes that are
        /// not a glb container, NotSupportedException when no loader package is installed, and
        /// InvalidOperationException when the backend fails.
        /// </summary>
        public static async Task<GameObject> LoadAsync(byte[] bytes, Transform parent = null, string name = "ChibiAvatar",
            CancellationToken cancellationToken = default(CancellationToken))
        {
            string vrmVersion = ChibiGlb.VrmVersion(bytes); // also validates the glb container
            GameObject root = null;
#if CHIBI_UNIVRM
            if (vrmVersion != null)
            {
                // VRM 1.0 directly, VRM 0.x migrated to 1.0; the default await caller suits play and edit mode.
                Vrm10Instance instance = await Vrm10.LoadBytesAsync(bytes, canLoadVrm0X: true, showMeshes: true, ct: cancellationToken);
                if (instance == null) throw new InvalidOperationException("UniVRM could not load the VRM " + vrmVersion + " file");
                root = instance.gameObject;
            }
#endif
#if CHIBI_GLTFAST
            if (root == null)
                root = await LoadWithGltfast(bytes, name, cancellationToken);
#elif CHIBI_UNIVRM
            if (root == null)
            {
                RuntimeGltfInstance gltf = await GltfUtility.LoadBytesAsync(name + ".glb", bytes);
                if (gltf == null) throw new InvalidOperationException("UniGLTF could not load the glb file");
                gltf.ShowMeshes();
                gltf.EnableUpdateWhenOffscreen();
                root = gltf.gameObject;
            }
#endif
            if (root == null)
                throw new NotSupportedException("no glTF/VRM loader in this project: install UniVRM (com.vrmc.vrm, VRM 1.0 and 0.x) "
                    + "or glTFast (com.unity.cloud.gltfast, plain glTF) with the Package Manager. Returned file: "
                    + (vrmVersion != null ? "VRM " + vrmVersion : "glb") + ", " + bytes.Length + " bytes");
            root.name = name;
            if (parent != null) root.transform.SetParent(parent, false);
            return root;
        }

#if CHIBI_GLTFAST
        static async Task<GameObject> LoadWithGltfast(byte[] bytes, string name, CancellationToken cancellationToken)
        {
            var import = new GltfImport();
#pragma warning disable 618 // LoadGltfBinary is marked obsolete in glTFast 6.x but exists in every version we support
            bool loaded = await import.LoadGltfBinary(bytes);
#pragma warning restore 618
            if (!loaded || cancellationToken.IsCancellationRequested)
            {
                import.Dispose();
                cancellationToken.ThrowIfCancellationRequested();
                throw new InvalidOperationException("glTFast could not load the glb file (see the console for its log)");
            }
            var root = new GameObject(name);
            if (!await import.InstantiateMainSceneAsync(root.transform))
            {
                if (Application.isPlaying) UnityEngine.Object.Destroy(root);
                else UnityEngine.Object.DestroyImmediate(root);
                import.Dispose();
                throw new InvalidOperationException("glTFast could not instantiate the glb scene");
            }
            // The import owns meshes, materials and textures: release them with the avatar.
            root.AddComponent<ChibiGltfastOwner>().Import = import;
            return root;
        }
#endif
    }
}
