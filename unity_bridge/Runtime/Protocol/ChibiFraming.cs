// CHB1 binary framing (server/PROTOCOL.md section 3): every binary websocket message is
// one chunk of one blob.
//
//   offset 0   4 bytes  magic "CHB1"
//   offset 4   4 bytes  header length H, unsigned 32-bit big-endian, 2 <= H <= 4096
//   offset 8   H bytes  header: UTF-8 JSON {id, kind, index, count, offset, size, sha256 or crc32, item}
//   offset 8+H rest     payload: this chunk's bytes of the blob
//
// The checksum of a connection's blobs is chosen at hello (hello.checksums, welcome.checksum):
// sha256 by default, crc32 when both sides know it.
using System;
using System.Collections.Generic;
using System.IO;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace ChibiAvatar.Protocol
{
    /// <summary>The JSON header of one binary chunk.</summary>
    public sealed class ChibiChunkHeader
    {
        public string Id;
        /// <summary>"photo" (client to server), "model" or "preview" (server to client).</summary>
        public string Kind;
        public long Index;
        public long Count = 1;
        /// <summary>Byte offset of this payload in the whole blob.</summary>
        public long Offset;
        /// <summary>Size of the whole blob in bytes.</summary>
        public long Size;
        /// <summary>Lowercase hex SHA-256 of the whole blob, or null (optional from clients).</summary>
        public string Sha256;
        /// <summary>8 lowercase hex digits of the whole blob's CRC-32, or null: sent in place of
        /// <see cref="Sha256"/> on connections whose welcome chose crc32.</summary>
        public string Crc32;
        /// <summary>Results only: which avatar of the request.</summary>
        public long Item;
        public bool HasItem;
    }

    /// <summary>A decoded binary chunk: its header and its payload bytes.</summary>
    public sealed class ChibiFrame
    {
        public ChibiChunkHeader Header;
        public byte[] Payload;
    }

    /// <summary>The blob checksums of the protocol, by header field name.</summary>
    public static class ChibiChecksums
    {
        public const string Sha256 = "sha256";
        public const string Crc32 = "crc32";
        /// <summary>What a client asks for at hello unless told otherwise, most wanted first.</summary>
        public static readonly string[] Preferred = { Crc32, Sha256 };

        static readonly Regex Sha256Pattern = new Regex("^[0-9a-f]{64}$", RegexOptions.CultureInvariant);
        static readonly Regex Crc32Pattern = new Regex("^[0-9a-f]{8}$", RegexOptions.CultureInvariant);

        public static bool IsKnown(string name)
        {
            return name == Sha256 || name == Crc32;
        }

        /// <summary>True when <paramref name="hex"/> is a well-formed digest of checksum <paramref name="name"/>.</summary>
        public static bool IsValidDigest(string name, string hex)
        {
            if (hex == null) return false;
            if (name == Sha256) return ChibiFraming.IsMatch(Sha256Pattern, hex);
            if (name == Crc32) return ChibiFraming.IsMatch(Crc32Pattern, hex);
            return false;
        }

        /// <summary>The lowercase hex checksum <paramref name="name"/> of <paramref name="data"/>.</summary>
        public static string Digest(string name, byte[] data)
        {
            if (name == Sha256) return ChibiFraming.Sha256Hex(data);
            if (name == Crc32) return ChibiCrc32.Hex(data);
            throw new ArgumentException("unknown checksum " + name, nameof(name));
        }
    }

    /// <summary>
    /// CRC-32 as in zlib, PNG and zip (polynomial 0x04C11DB7 reflected, i.e. 0xEDB88320; initial
    /// value and final XOR 0xFFFFFFFF). Written here because Unity's .NET profiles have no public
    /// CRC-32; worth having because Mono's SHA256Managed takes about 5 ms per 660 kB avatar where
    /// this byte-at-a-time table takes about 1.4 (mono 6.8, the harness's crc32 check times both).
    /// </summary>
    public static class ChibiCrc32
    {
        static readonly uint[] Table = MakeTable();

        static uint[] MakeTable()
        {
            var table = new uint[256];
            for (uint n = 0; n < 256; n++)
            {
                uint c = n;
                for (int k = 0; k < 8; k++)
                    c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
                table[n] = c;
            }
            return table;
        }

        public static uint Compute(byte[] data)
        {
            return Compute(data, 0, data.Length);
        }

        public static uint Compute(byte[] data, int offset, int count)
        {
            if (data == null) throw new ArgumentNullException(nameof(data));
            if (offset < 0 || count < 0 || offset > data.Length - count) throw new ArgumentOutOfRangeException(nameof(count));
            uint crc = 0xFFFFFFFFu;
            int end = offset + count;
            for (int i = offset; i < end; i++)
                crc = Table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
            return crc ^ 0xFFFFFFFFu;
        }

        /// <summary>8 lowercase hex digits, zero-padded, as the protocol's `crc32` field.</summary>
        public static string Hex(byte[] data)
        {
            return Compute(data).ToString("x8");
        }
    }

    public static class ChibiFraming
    {
        public static readonly byte[] Magic = { 0x43, 0x48, 0x42, 0x31 }; // "CHB1"
        public const int MaxHeaderBytes = 4096;
        public const int PrefixBytes = 8;
        public static readonly string[] BlobKinds = { "photo", "model", "preview" };
        const long MaxSafeInteger = 9007199254740992L; // 2^53: integers in headers stay below it

        static readonly Regex IdPattern = new Regex("^[A-Za-z0-9._:-]{1,64}$", RegexOptions.CultureInvariant);

        /// <summary>True when <paramref name="id"/> is a valid request id (1-64 of A-Z a-z 0-9 . _ : -).</summary>
        public static bool IsValidId(string id)
        {
            return id != null && IsMatch(IdPattern, id);
        }

        // Regex.IsMatch lets "$" match before a final "\n"; the length check closes that gap.
        internal static bool IsMatch(Regex pattern, string text)
        {
            var match = pattern.Match(text);
            return match.Success && match.Length == text.Length;
        }

        /// <summary>Lowercase hex SHA-256 of <paramref name="data"/>.</summary>
        public static string Sha256Hex(byte[] data)
        {
            return Sha256Hex(data, 0, data.Length);
        }

        public static string Sha256Hex(byte[] data, int offset, int count)
        {
            using (var sha = SHA256.Create())
            {
                byte[] digest = sha.ComputeHash(data, offset, count);
                var builder = new StringBuilder(64);
                foreach (byte b in digest) builder.Append(b.ToString("x2"));
                return builder.ToString();
            }
        }

        /// <summary>One binary message: magic, header length, JSON header, payload[offset, offset+count).</summary>
        public static byte[] EncodeFrame(ChibiChunkHeader header, byte[] payload, int offset, int count)
        {
            var json = new Dictionary<string, object>
            {
                { "id", header.Id }, { "kind", header.Kind }, { "index", header.Index },
                { "count", header.Count }, { "offset", header.Offset }, { "size", header.Size },
            };
            if (header.Sha256 != null) json["sha256"] = header.Sha256;
            if (header.Crc32 != null) json["crc32"] = header.Crc32;
            if (header.HasItem) json["item"] = header.Item;
            byte[] head = Encoding.UTF8.GetBytes(ChibiJson.Serialize(json));
            if (head.Length > MaxHeaderBytes)
                throw new ChibiProtocolException(ChibiErrorCodes.BadMessage, "binary header over " + MaxHeaderBytes + " bytes");
            var frame = new byte[PrefixBytes + head.Length + count];
            Buffer.BlockCopy(Magic, 0, frame, 0, 4);
            frame[4] = (byte)(head.Length >> 24);
            frame[5] = (byte)(head.Length >> 16);
            frame[6] = (byte)(head.Length >> 8);
            frame[7] = (byte)head.Length;
            Buffer.BlockCopy(head, 0, frame, PrefixBytes, head.Length);
            if (count > 0) Buffer.BlockCopy(payload, offset, frame, PrefixBytes + head.Length, count);
            return frame;
        }

        /// <summary>
        /// Splits a blob into binary messages of at most <paramref name="chunkBytes"/> payload each;
        /// every header carries the blob's size and its <paramref name="checksum"/> (the connection's:
        /// "sha256" or "crc32"). An empty blob is one empty chunk.
        /// </summary>
        public static List<byte[]> EncodeBlob(string requestId, string kind, byte[] data, int chunkBytes, long? item = null,
            string checksum = ChibiChecksums.Sha256)
        {
            if (chunkBytes < 1) throw new ArgumentOutOfRangeException(nameof(chunkBytes));
            if (!IsValidId(requestId)) throw new ArgumentException("invalid request id", nameof(requestId));
            if (!ChibiChecksums.IsKnown(checksum)) throw new ArgumentException("unknown checksum " + checksum, nameof(checksum));
            string digest = ChibiChecksums.Digest(checksum, data);
            bool crc = checksum == ChibiChecksums.Crc32;
            int count = Math.Max(1, (int)((data.LongLength + chunkBytes - 1) / chunkBytes));
            var frames = new List<byte[]>(count);
            for (int index = 0; index < count; index++)
            {
                int offset = index * chunkBytes;
                int length = Math.Min(chunkBytes, data.Length - offset);
                var header = new ChibiChunkHeader
                {
                    Id = requestId, Kind = kind, Index = index, Count = count, Offset = offset,
                    Size = data.Length, Sha256 = crc ? null : digest, Crc32 = crc ? digest : null,
                    Item = item ?? 0, HasItem = item.HasValue,
                };
                frames.Add(EncodeFrame(header, data, offset, length));
            }
            return frames;
        }

        /// <summary>
        /// A binary message (its first <paramref name="length"/> bytes) -> header and payload.
        /// Throws <see cref="ChibiProtocolException"/> with code bad_message for anything malformed.
        /// </summary>
        public static ChibiFrame DecodeFrame(byte[] message, int length)
        {
            if (length < PrefixBytes) throw Bad("binary frame shorter than its 8-byte prefix", null);
            for (int i = 0; i < 4; i++)
                if (message[i] != Magic[i]) throw Bad("binary frame does not start with CHB1", null);
            long headLength = ((long)message[4] << 24) | ((long)message[5] << 16) | ((long)message[6] << 8) | message[7];
            if (headLength < 2 || headLength > MaxHeaderBytes || PrefixBytes + headLength > length)
                throw Bad("bad binary header length " + headLength, null);
            Dictionary<string, object> json;
            try
            {
                var utf8 = new UTF8Encoding(false, true); // throws on invalid UTF-8
                json = ChibiJson.ParseObject(utf8.GetString(message, PrefixBytes, (int)headLength));
            }
            catch (Exception e) when (e is FormatException || e is ArgumentException)
            {
                throw Bad("binary header is not a UTF-8 JSON object", null);
            }
            string id = ChibiJson.GetString(json, "id");
            if (!IsValidId(id)) throw Bad("id must be 1-64 characters of [A-Za-z0-9._:-]", null);
            string kind = ChibiJson.GetString(json, "kind");
            if (Array.IndexOf(BlobKinds, kind) < 0) throw Bad("unknown blob kind", id);
            var header = new ChibiChunkHeader
            {
                Id = id,
                Kind = kind,
                Index = Integer(json, "index", id, 0),
                Count = Integer(json, "count", id, 1),
                Offset = Integer(json, "offset", id, 0),
                Size = Integer(json, "size", id, 0),
                HasItem = json.ContainsKey("item"),
            };
            header.Item = header.HasItem ? Integer(json, "item", id, 0) : 0;
            header.Sha256 = Digest(json, ChibiChecksums.Sha256, "64", id);
            header.Crc32 = Digest(json, ChibiChecksums.Crc32, "8", id);
            int payloadStart = PrefixBytes + (int)headLength;
            var payload = new byte[length - payloadStart];
            Buffer.BlockCopy(message, payloadStart, payload, 0, payload.Length);
            if (header.Index >= header.Count || header.Offset + payload.Length > header.Size)
                throw Bad("chunk index/offset out of range", id);
            return new ChibiFrame { Header = header, Payload = payload };
        }

        // A checksum field as the header gave it (null when absent); a malformed one is bad_message.
        static string Digest(Dictionary<string, object> json, string name, string digits, string id)
        {
            object value;
            if (!json.TryGetValue(name, out value) || value == null) return null;
            string hex = value as string;
            if (!ChibiChecksums.IsValidDigest(name, hex))
                throw Bad(name + " must be " + digits + " lowercase hex digits", id);
            return hex;
        }

        static long Integer(Dictionary<string, object> json, string name, string id, long minimum)
        {
            object value;
            if (!json.TryGetValue(name, out value) || !(value is long) || (long)value < minimum || (long)value >= MaxSafeInteger)
                throw Bad("header field '" + name + "' must be an integer", id);
            return (long)value;
        }

        static ChibiProtocolException Bad(string message, string id)
        {
            return new ChibiProtocolException(ChibiErrorCodes.BadMessage, message, reference: id);
        }
    }

    /// <summary>
    /// Reassembles one blob from its in-order chunks and checks the total size and every checksum
    /// its headers carry (SHA-256, CRC-32).
    /// </summary>
    public sealed class ChibiBlobAssembler
    {
        readonly ChibiChunkHeader first;
        readonly MemoryStream buffer;
        long nextIndex;

        /// <param name="first">the header of chunk 0</param>
        /// <param name="maxBytes">refuse blobs announcing more bytes than this (payload_too_large)</param>
        public ChibiBlobAssembler(ChibiChunkHeader first, long maxBytes)
        {
            if (first.Index != 0)
                throw new ChibiProtocolException(ChibiErrorCodes.BadMessage, "the first chunk of a blob must have index 0", first.Id);
            if (first.Size > maxBytes)
                throw new ChibiProtocolException(ChibiErrorCodes.PayloadTooLarge,
                    first.Kind + " of " + first.Size + " bytes is over " + maxBytes, first.Id);
            if (first.Count > Math.Max(1, first.Size))
                throw new ChibiProtocolException(ChibiErrorCodes.BadMessage, "more chunks than bytes", first.Id);
            this.first = first;
            buffer = new MemoryStream((int)Math.Min(first.Size, 16L * 1024 * 1024));
        }

        public string Kind { get { return first.Kind; } }
        public long Item { get { return first.Item; } }
        public long Size { get { return first.Size; } }
        public string Sha256 { get { return first.Sha256; } }
        public string Crc32 { get { return first.Crc32; } }

        /// <summary>Adds the next chunk; returns the whole, verified blob after the last one, else null.</summary>
        public byte[] Add(ChibiFrame frame)
        {
            var h = frame.Header;
            bool sameBlob = h.Kind == first.Kind && h.Item == first.Item && h.Count == first.Count
                && h.Size == first.Size && h.Sha256 == first.Sha256 && h.Crc32 == first.Crc32;
            if (!sameBlob || h.Index != nextIndex || h.Offset != buffer.Length)
                throw new ChibiProtocolException(ChibiErrorCodes.BadMessage, "chunk out of order or from another blob", h.Id);
            buffer.Write(frame.Payload, 0, frame.Payload.Length);
            nextIndex++;
            if (nextIndex < first.Count) return null;
            byte[] data = buffer.ToArray();
            if (data.LongLength != first.Size)
                throw new ChibiProtocolException(ChibiErrorCodes.BadMessage,
                    "blob has " + data.Length + " bytes, header said " + first.Size, h.Id);
            if (first.Sha256 != null && ChibiFraming.Sha256Hex(data) != first.Sha256)
                throw new ChibiProtocolException(ChibiErrorCodes.ChecksumMismatch, "sha256 of the blob does not match", h.Id);
            if (first.Crc32 != null && ChibiCrc32.Hex(data) != first.Crc32)
                throw new ChibiProtocolException(ChibiErrorCodes.ChecksumMismatch, "crc32 of the blob does not match", h.Id);
            return data;
        }
    }
}
