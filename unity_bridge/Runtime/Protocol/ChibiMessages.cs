// The protocol's JSON control messages (server/PROTOCOL.md section 2): builders for the
// client's messages and typed views of the server's.
using System;
using System.Collections.Generic;

namespace ChibiAvatar.Protocol
{
    public static class ChibiProtocol
    {
        /// <summary>The protocol version this client speaks.</summary>
        public const int Version = 1;
        public const string DefaultUrl = "ws://127.0.0.1:8765/ws";
        /// <summary>Known progress stages in the order the server sends them (unknown ones are ignored).</summary>
        public static readonly string[] Stages = { "started", "decoded", "face_found", "params", "built", "exported" };
        public static readonly string[] Formats = { "glb", "vrm1", "vrm0" };
        public static readonly string[] Qualities = { "default", "high" };
    }

    /// <summary>The `options` of a request; every member has the server's default.</summary>
    public sealed class ChibiRequestOptions
    {
        /// <summary>"glb", "vrm1" (VRM 1.0) or "vrm0" (VRM 0.x).</summary>
        public string Format = "vrm1";
        /// <summary>"default" (VRChat Quest "Excellent" budget) or "high".</summary>
        public string Quality = "default";
        /// <summary>Photo only: one avatar per face found instead of the largest face only.</summary>
        public bool AllFaces;
        /// <summary>Include the AvatarParams used in each result.</summary>
        public bool ReturnParams;
        /// <summary>Also send a preview PNG per avatar.</summary>
        public bool ReturnPreview;
        /// <summary>VRM formats: embed the 1024 px thumbnail. False leaves it out (a complete
        /// VRM in about half the time): avatars loaded at run time never show it.</summary>
        public bool Thumbnail = true;

        public Dictionary<string, object> ToJson()
        {
            var json = new Dictionary<string, object>
            {
                { "format", Format }, { "quality", Quality }, { "all_faces", AllFaces },
                { "return_params", ReturnParams }, { "return_preview", ReturnPreview },
            };
            // sent only when set: servers that predate the option refuse unknown options
            if (!Thumbnail) json["thumbnail"] = false;
            return json;
        }
    }

    /// <summary>Builders for the text messages a client sends.</summary>
    public static class ChibiMessages
    {
        /// <param name="checksums">blob checksums the client can check, most wanted first
        /// (<see cref="ChibiChecksums"/>); null or sha256 alone sends none, which means sha256</param>
        public static string Hello(int version, string token, string client, int? maxChunkBytes, IList<string> checksums = null)
        {
            var message = new Dictionary<string, object> { { "type", "hello" }, { "version", version } };
            if (token != null) message["token"] = token;
            if (client != null) message["client"] = client;
            if (maxChunkBytes.HasValue) message["max_chunk_bytes"] = maxChunkBytes.Value;
            if (checksums != null && !(checksums.Count == 1 && checksums[0] == ChibiChecksums.Sha256))
                message["checksums"] = new List<object>(checksums);
            return ChibiJson.Serialize(message);
        }

        /// <param name="paramsObject">for source "params": the AvatarParams as a parsed JSON object</param>
        public static string Request(string id, string source, Dictionary<string, object> paramsObject, ChibiRequestOptions options)
        {
            var message = new Dictionary<string, object> { { "type", "request" }, { "id", id }, { "source", source } };
            if (paramsObject != null) message["params"] = paramsObject;
            message["options"] = (options ?? new ChibiRequestOptions()).ToJson();
            return ChibiJson.Serialize(message);
        }

        public static string Cancel(string id)
        {
            return ChibiJson.Serialize(new Dictionary<string, object> { { "type", "cancel" }, { "id", id } });
        }

        public static string Ping(long nonce)
        {
            return ChibiJson.Serialize(new Dictionary<string, object> { { "type", "ping" }, { "nonce", nonce } });
        }
    }

    /// <summary>The server's `welcome`: what it serves and its limits.</summary>
    public sealed class ChibiWelcome
    {
        public int Version;
        public string Server;
        public List<string> Formats = new List<string>();
        public List<string> Qualities = new List<string>();
        /// <summary>Request sources the server can serve now ("photo", "params").</summary>
        public Dictionary<string, bool> Sources = new Dictionary<string, bool>();
        /// <summary>welcome.limits as parsed JSON (max_frame_bytes, max_photo_bytes, max_in_flight...).</summary>
        public Dictionary<string, object> Limits = new Dictionary<string, object>();
        /// <summary>The largest payload of any result chunk on this connection.</summary>
        public int ChunkBytes;
        /// <summary>The checksum of every blob on this connection, both ways: "crc32" or "sha256"
        /// (also when the server predates welcome.checksum).</summary>
        public string Checksum = ChibiChecksums.Sha256;
        public Dictionary<string, object> Raw;

        public bool PhotoAvailable { get { bool v; return Sources.TryGetValue("photo", out v) && v; } }
        public bool ParamsAvailable { get { bool v; return Sources.TryGetValue("params", out v) && v; } }

        public long Limit(string name, long fallback)
        {
            return ChibiJson.GetLong(Limits, name) ?? fallback;
        }

        public static ChibiWelcome FromJson(Dictionary<string, object> m)
        {
            var welcome = new ChibiWelcome
            {
                Version = (int)(ChibiJson.GetLong(m, "version") ?? 0),
                Server = ChibiJson.GetString(m, "server"),
                Limits = ChibiJson.GetObject(m, "limits") ?? new Dictionary<string, object>(),
                ChunkBytes = (int)Math.Min(int.MaxValue, ChibiJson.GetLong(m, "chunk_bytes") ?? 0),
                Raw = m,
            };
            if (welcome.ChunkBytes < 1)
                throw new ChibiProtocolException(ChibiErrorCodes.BadMessage, "welcome without a valid chunk_bytes");
            object checksum;
            if (m.TryGetValue("checksum", out checksum) && checksum != null)
            {
                // Blobs carrying a checksum we cannot check would go unverified: refuse the connection.
                welcome.Checksum = checksum as string;
                if (!ChibiChecksums.IsKnown(welcome.Checksum))
                    throw new ChibiProtocolException(ChibiErrorCodes.BadMessage, "welcome names an unknown checksum: " + checksum);
            }
            AddStrings(ChibiJson.GetArray(m, "formats"), welcome.Formats);
            AddStrings(ChibiJson.GetArray(m, "qualities"), welcome.Qualities);
            var sources = ChibiJson.GetObject(m, "sources");
            if (sources != null)
                foreach (var pair in sources)
                    welcome.Sources[pair.Key] = pair.Value is bool b && b;
            return welcome;
        }

        static void AddStrings(List<object> from, List<string> to)
        {
            if (from == null) return;
            foreach (object v in from)
                if (v is string s) to.Add(s);
        }
    }

    /// <summary>One `progress` event: a stage of a request finished.</summary>
    public sealed class ChibiProgress
    {
        public string RequestId;
        /// <summary>started, decoded, face_found, params, built, exported (others may be added).</summary>
        public string Stage;
        /// <summary>Which avatar (params/built/exported), or -1 for stages about the whole photo.</summary>
        public int Item = -1;
        /// <summary>Milliseconds since `started`.</summary>
        public double ElapsedMs;
        /// <summary>The whole message (width/height, faces, bytes...).</summary>
        public Dictionary<string, object> Raw;

        /// <summary>Position of <see cref="Stage"/> in <see cref="ChibiProtocol.Stages"/>; -1 if unknown.</summary>
        public int StageIndex { get { return Array.IndexOf(ChibiProtocol.Stages, Stage); } }

        public override string ToString()
        {
            return RequestId + " " + Stage + (Item >= 0 ? "[" + Item + "]" : "") + " at " + ElapsedMs.ToString("0") + " ms";
        }
    }

    /// <summary>One avatar the server made: the model file and, when asked for, preview and params.</summary>
    public sealed class ChibiAvatarResult
    {
        public string RequestId;
        public int Item;
        public int Items;
        /// <summary>"glb", "vrm1" or "vrm0"; pick the file extension with <see cref="FileExtension"/>.</summary>
        public string Format;
        /// <summary>The glb/VRM file (verified against the announced size and checksum).</summary>
        public byte[] Model;
        /// <summary>The model's announced SHA-256 (null on connections that chose crc32).</summary>
        public string ModelSha256;
        /// <summary>The model's announced CRC-32, 8 hex digits (null on sha256 connections).</summary>
        public string ModelCrc32;
        /// <summary>Preview PNG, or null.</summary>
        public byte[] Preview;
        /// <summary>The AvatarParams used (with return_params), as a JSON object; else null.</summary>
        public Dictionary<string, object> Params;
        public Dictionary<string, object> TimingsMs;

        public string ParamsJson { get { return Params == null ? null : ChibiJson.Serialize(Params); } }

        /// <summary>".glb" for glb, ".vrm" for both VRM versions.</summary>
        public string FileExtension { get { return Format == "glb" ? ".glb" : ".vrm"; } }
    }
}
