// Reads the JSON chunk of a .glb/.vrm file, to tell plain glTF from VRM 1.0 / VRM 0.x
// before choosing a loader. Plain C#, no UnityEngine.
using System;
using System.Collections.Generic;
using System.Text;

namespace ChibiAvatar.Protocol
{
    public static class ChibiGlb
    {
        /// <summary>True when the bytes start like a binary glTF 2.0 container ("glTF", version 2).</summary>
        public static bool IsGlb(byte[] data)
        {
            return data != null && data.Length >= 20 && data[0] == 'g' && data[1] == 'l' && data[2] == 'T' && data[3] == 'F'
                && ReadUInt32(data, 4) == 2;
        }

        /// <summary>The glTF JSON of a .glb/.vrm file. Throws FormatException when the container is malformed.</summary>
        public static Dictionary<string, object> ReadJson(byte[] data)
        {
            if (!IsGlb(data)) throw new FormatException("not a binary glTF 2.0 file (no 'glTF' version 2 header)");
            long total = ReadUInt32(data, 8);
            long jsonLength = ReadUInt32(data, 12);
            bool isJsonChunk = data[16] == 'J' && data[17] == 'S' && data[18] == 'O' && data[19] == 'N';
            if (total > data.Length || !isJsonChunk || 20 + jsonLength > total)
                throw new FormatException("malformed glb container (length or first chunk)");
            return ChibiJson.ParseObject(Encoding.UTF8.GetString(data, 20, (int)jsonLength));
        }

        /// <summary>"1.0" for VRM 1.0 (VRMC_vrm), "0.x" for VRM 0.x (VRM), or null for plain glTF.</summary>
        public static string VrmVersion(byte[] data)
        {
            var extensions = ChibiJson.GetObject(ReadJson(data), "extensions");
            if (extensions == null) return null;
            if (extensions.ContainsKey("VRMC_vrm")) return "1.0";
            if (extensions.ContainsKey("VRM")) return "0.x";
            return null;
        }

        static long ReadUInt32(byte[] data, int offset) // little-endian, as glb is
        {
            return data[offset] | ((long)data[offset + 1] << 8) | ((long)data[offset + 2] << 16) | ((long)data[offset + 3] << 24);
        }
    }
}
