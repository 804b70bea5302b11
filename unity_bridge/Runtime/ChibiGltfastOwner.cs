// Keeps a glTFast import alive as long as the avatar it instantiated, and disposes it
// (meshes, materials, textures) when the avatar is destroyed. Empty without glTFast.
// NOT compiled in this repository's CI (it needs UnityEngine); see README.md.
#if CHIBI_GLTFAST
using GLTFast;
using UnityEngine;

namespace ChibiAvatar
{
    public sealed class ChibiGltfastOwner : MonoBehaviour
    {
        public GltfImport Import;

        void OnDestroy()
        {
            if (Import != null) Import.Dispose();
            Import = null;
        }
    }
}
#endif
