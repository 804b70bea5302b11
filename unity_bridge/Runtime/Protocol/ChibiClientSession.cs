// The client's side of the protocol as a state machine without I/O: feed it whole websocket
// messages, it returns events; ask it for messages, it returns what to send. The I/O wrapper
// (ChibiAvatarClient) moves bytes; tests and other transports can drive it directly.
// Not thread-safe: callers serialise access (ChibiAvatarClient holds a lock).
using System;
using System.Collections.Generic;
using System.Text;

namespace ChibiAvatar.Protocol
{
    public enum ChibiEventKind
    {
        /// <summary>The server's welcome arrived; the session is open.</summary>
        Welcome,
        /// <summary>The connection failed or is closing (fatal error, close frame, socket error).</summary>
        ConnectionFailed,
        /// <summary>A request passed admission.</summary>
        Accepted,
        Progress,
        /// <summary>A request ended with `done`; <see cref="ChibiClientEvent.Results"/> holds its avatars.</summary>
        Completed,
        /// <summary>A request ended with an error (terminal).</summary>
        Failed,
        /// <summary>A non-terminal error (id null): unknown_id after a late cancel, duplicate_id...</summary>
        Notice,
        Pong,
    }

    public sealed class ChibiClientEvent
    {
        public ChibiEventKind Kind;
        public string RequestId;
        public ChibiWelcome Welcome;
        public ChibiProgress Progress;
        public long Queued;
        public List<ChibiAvatarResult> Results;
        public ChibiProtocolException Error;
        public object Nonce;
    }

    /// <summary>One websocket message to send: text (JSON) or binary (a CHB1 chunk).</summary>
    public sealed class ChibiOutgoing
    {
        public string Text;
        public byte[] Binary;
        public bool IsText { get { return Text != null; } }
    }

    public enum ChibiSessionState { New, AwaitWelcome, Open, Closed }

    public sealed class ChibiClientSession
    {
        sealed class ExpectedBlob
        {
            public long Size;
            public string Sha256;
            public string Crc32;
            public ChibiBlobAssembler Assembler;
            public byte[] Data;
        }

        sealed class Pending
        {
            public string Source;
            public bool Accepted;
            public readonly SortedDictionary<long, ChibiAvatarResult> Results = new SortedDictionary<long, ChibiAvatarResult>();
            // key: item + ":" + kind
            public readonly Dictionary<string, ExpectedBlob> Blobs = new Dictionary<string, ExpectedBlob>();
        }

        readonly Dictionary<string, Pending> pending = new Dictionary<string, Pending>();
        readonly HashSet<string> ended = new HashSet<string>(); // late messages for these are dropped
        long nextId;

        public ChibiSessionState State { get; private set; }
        public ChibiWelcome Welcome { get; private set; }
        /// <summary>Refuse result blobs announcing more bytes than this.</summary>
        public long MaxBlobBytes = 512L * 1024 * 1024;

        public ICollection<string> InFlight { get { return pending.Keys; } }

        /// <summary>The checksum of this connection's blobs, both ways ("crc32" or "sha256"), once welcomed.</summary>
        public string Checksum { get { return Welcome != null ? Welcome.Checksum : ChibiChecksums.Sha256; } }

        /// <summary>A fresh request id for this connection ("c1", "c2", ...).</summary>
        public string NextId()
        {
            nextId++;
            return "c" + nextId;
        }

        /// <summary>The hello message; must be the first one sent.</summary>
        /// <param name="checksums">blob checksums to offer, most wanted first; null:
        /// <see cref="ChibiChecksums.Preferred"/> (crc32, then sha256)</param>
        public string Hello(int version, string token, string client, int? maxChunkBytes, IList<string> checksums = null)
        {
            if (State != ChibiSessionState.New) throw new InvalidOperationException("hello was already sent");
            if (maxChunkBytes.HasValue && maxChunkBytes.Value < 1024)
                throw new ArgumentOutOfRangeException(nameof(maxChunkBytes), "at least 1024");
            checksums = checksums ?? ChibiChecksums.Preferred;
            foreach (string name in checksums)
                if (!ChibiChecksums.IsKnown(name)) throw new ArgumentException("unknown checksum " + name, nameof(checksums));
            State = ChibiSessionState.AwaitWelcome;
            return ChibiMessages.Hello(version, token, client, maxChunkBytes, checksums);
        }

        /// <summary>A photo request: the request message, then the photo as binary chunks.</summary>
        public List<ChibiOutgoing> StartPhotoRequest(string id, byte[] photo, ChibiRequestOptions options)
        {
            if (photo == null) throw new ArgumentNullException(nameof(photo));
            long maxPhoto = Welcome == null ? long.MaxValue : Welcome.Limit("max_photo_bytes", long.MaxValue);
            if (photo.Length > maxPhoto) // refused before uploading it all, which the server would not read
                throw new ChibiProtocolException(ChibiErrorCodes.PayloadTooLarge,
                    "the photo is " + photo.Length + " bytes, over the server's max_photo_bytes " + maxPhoto, id);
            string request = ChibiMessages.Request(id, "photo", null, options);
            CheckTextSize(id, request);
            Register(id, "photo");
            // Chunks stay under the server's frame limit, header included.
            long frameLimit = Welcome.Limit("max_frame_bytes", 16L * 1024 * 1024) - ChibiFraming.PrefixBytes - ChibiFraming.MaxHeaderBytes;
            int chunk = (int)Math.Max(1024, Math.Min(Welcome.ChunkBytes, frameLimit));
            var messages = new List<ChibiOutgoing> { new ChibiOutgoing { Text = request } };
            foreach (byte[] frame in ChibiFraming.EncodeBlob(id, "photo", photo, chunk, checksum: Checksum))
                messages.Add(new ChibiOutgoing { Binary = frame });
            return messages;
        }

        /// <summary>A params request (the avatar built from an AvatarParams JSON object).</summary>
        public ChibiOutgoing StartParamsRequest(string id, Dictionary<string, object> avatarParams, ChibiRequestOptions options)
        {
            string request = ChibiMessages.Request(id, "params", avatarParams ?? new Dictionary<string, object>(), options);
            CheckTextSize(id, request);
            Register(id, "params");
            return new ChibiOutgoing { Text = request };
        }

        /// <summary>A request over the server's max_json_bytes is refused here: the server
        /// answers such a message frame_too_large without an id (it does not read it), so the
        /// request would wait forever.</summary>
        void CheckTextSize(string id, string text)
        {
            long limit = Welcome == null ? long.MaxValue : Welcome.Limit("max_json_bytes", 64 * 1024);
            int size = Encoding.UTF8.GetByteCount(text);
            if (size > limit)
                throw new ChibiProtocolException(ChibiErrorCodes.FrameTooLarge,
                    "the request is " + size + " bytes, over the server's max_json_bytes " + limit, id);
        }

        void Register(string id, string source)
        {
            if (State != ChibiSessionState.Open) throw new InvalidOperationException("the session is not open (state " + State + ")");
            if (!ChibiFraming.IsValidId(id)) throw new ArgumentException("request id must be 1-64 characters of [A-Za-z0-9._:-]", nameof(id));
            if (pending.ContainsKey(id)) throw new ArgumentException("request " + id + " is already in flight", nameof(id));
            ended.Remove(id); // ids may be reused once a request ended
            pending[id] = new Pending { Source = source };
        }

        /// <summary>The cancel message; the request stays in flight until the server ends it.</summary>
        public string Cancel(string id)
        {
            return ChibiMessages.Cancel(id);
        }

        public string Ping(long nonce)
        {
            return ChibiMessages.Ping(nonce);
        }

        /// <summary>Forget a request locally (e.g. its cancel was never answered); late messages are dropped.</summary>
        public void Abandon(string id)
        {
            if (pending.Remove(id)) ended.Add(id);
        }

        // -- input ------------------------------------------------------------------------
        public List<ChibiClientEvent> ReceiveText(string text)
        {
            var events = new List<ChibiClientEvent>();
            if (State == ChibiSessionState.Closed) return events;
            Dictionary<string, object> message;
            try
            {
                message = ChibiJson.ParseObject(text);
            }
            catch (FormatException e)
            {
                return Malformed(events, "server sent invalid JSON: " + e.Message);
            }
            string type = ChibiJson.GetString(message, "type");
            if (State == ChibiSessionState.AwaitWelcome)
                return OnFirstMessage(events, type, message);
            string id = ChibiJson.GetString(message, "id");
            Pending request = null;
            if (id != null) pending.TryGetValue(id, out request);
            switch (type)
            {
                case "error":
                    OnError(events, message, id, request);
                    break;
                case "pong":
                    events.Add(new ChibiClientEvent { Kind = ChibiEventKind.Pong, Nonce = message.ContainsKey("nonce") ? message["nonce"] : null });
                    break;
                case "accepted":
                    if (request == null) break;
                    request.Accepted = true;
                    events.Add(new ChibiClientEvent { Kind = ChibiEventKind.Accepted, RequestId = id, Queued = ChibiJson.GetLong(message, "queued") ?? 0 });
                    break;
                case "progress":
                    if (request == null) break;
                    events.Add(new ChibiClientEvent
                    {
                        Kind = ChibiEventKind.Progress,
                        RequestId = id,
                        Progress = new ChibiProgress
                        {
                            RequestId = id,
                            Stage = ChibiJson.GetString(message, "stage") ?? "",
                            Item = (int)(ChibiJson.GetLong(message, "item") ?? -1),
                            ElapsedMs = ChibiJson.GetDouble(message, "elapsed_ms") ?? 0,
                            Raw = message,
                        },
                    });
                    break;
                case "result":
                    if (request != null) OnResult(events, message, id, request);
                    break;
                case "done":
                    if (request != null) OnDone(events, message, id, request);
                    break;
                default:
                    break; // messages of later protocol revisions are ignored (section 7)
            }
            return events;
        }

        public List<ChibiClientEvent> ReceiveBinary(byte[] data, int length)
        {
            var events = new List<ChibiClientEvent>();
            if (State != ChibiSessionState.Open) return events;
            ChibiFrame frame;
            try
            {
                frame = ChibiFraming.DecodeFrame(data, length);
            }
            catch (ChibiProtocolException e)
            {
                if (e.Ref != null && pending.ContainsKey(e.Ref)) return FailLocally(events, e.Ref, e);
                events.Add(new ChibiClientEvent { Kind = ChibiEventKind.Notice, Error = e });
                return events;
            }
            var h = frame.Header;
            Pending request;
            if (!pending.TryGetValue(h.Id, out request)) return events; // a request that ended (e.g. cancelled)
            ExpectedBlob blob;
            if (h.Kind == "photo" || !request.Blobs.TryGetValue(h.Item + ":" + h.Kind, out blob) || blob.Data != null)
                return FailLocally(events, h.Id, new ChibiProtocolException(ChibiErrorCodes.BadMessage,
                    "unexpected " + h.Kind + " chunk for item " + h.Item + " (no result announced it)", h.Id));
            try
            {
                if (h.Index == 0 && blob.Assembler == null)
                {
                    if (h.Size != blob.Size || h.Sha256 != blob.Sha256 || h.Crc32 != blob.Crc32)
                        throw new ChibiProtocolException(ChibiErrorCodes.BadMessage, "chunk header differs from the result message", h.Id);
                    blob.Assembler = new ChibiBlobAssembler(h, MaxBlobBytes);
                }
                if (blob.Assembler == null)
                    throw new ChibiProtocolException(ChibiErrorCodes.BadMessage, "the first chunk of a blob must have index 0", h.Id);
                byte[] whole = blob.Assembler.Add(frame);
                if (whole == null) return events;
                blob.Data = whole;
                blob.Assembler = null;
                ChibiAvatarResult result = request.Results[h.Item];
                if (h.Kind == "model") result.Model = whole;
                else result.Preview = whole;
            }
            catch (ChibiProtocolException e)
            {
                return FailLocally(events, h.Id, new ChibiProtocolException(e.Code, e.Message, h.Id));
            }
            return events;
        }

        /// <summary>The socket closed or failed: every request in flight fails with the close's code.</summary>
        public List<ChibiClientEvent> ConnectionClosed(int? closeStatus, string reason, Exception cause)
        {
            var events = new List<ChibiClientEvent>();
            if (State == ChibiSessionState.Closed) return events;
            // a local failure with a code of its own (frame_too_large over MaxMessageBytes) keeps it
            var coded = cause as ChibiProtocolException;
            string code = coded != null ? coded.Code : ChibiProtocolException.CodeForClose(closeStatus, reason);
            string what = "connection closed" + (closeStatus.HasValue ? " (" + closeStatus + " " + reason + ")" : "")
                + (cause != null ? ": " + cause.Message : "");
            return Close(events, new ChibiProtocolException(code, what, fatal: true, inner: cause));
        }

        // -- handlers ---------------------------------------------------------------------
        List<ChibiClientEvent> OnFirstMessage(List<ChibiClientEvent> events, string type, Dictionary<string, object> message)
        {
            if (type == "welcome")
            {
                try
                {
                    Welcome = ChibiWelcome.FromJson(message);
                }
                catch (ChibiProtocolException e)
                {
                    return Close(events, e);
                }
                State = ChibiSessionState.Open;
                events.Add(new ChibiClientEvent { Kind = ChibiEventKind.Welcome, Welcome = Welcome });
                return events;
            }
            if (type == "error") return Close(events, ChibiProtocolException.FromErrorMessage(message));
            return Close(events, new ChibiProtocolException(ChibiErrorCodes.BadMessage, "expected welcome, got " + (type ?? "no type")));
        }

        void OnError(List<ChibiClientEvent> events, Dictionary<string, object> message, string id, Pending request)
        {
            var error = ChibiProtocolException.FromErrorMessage(message);
            if (request != null)
            {
                pending.Remove(id);
                ended.Add(id);
                events.Add(new ChibiClientEvent { Kind = ChibiEventKind.Failed, RequestId = id, Error = error });
            }
            else if (id == null)
            {
                if (error.Fatal) Close(events, error);
                else events.Add(new ChibiClientEvent { Kind = ChibiEventKind.Notice, Error = error });
            }
        }

        void OnResult(List<ChibiClientEvent> events, Dictionary<string, object> message, string id, Pending request)
        {
            long item = ChibiJson.GetLong(message, "item") ?? -1;
            long items = ChibiJson.GetLong(message, "items") ?? -1;
            var model = ChibiJson.GetObject(message, "model");
            var preview = ChibiJson.GetObject(message, "preview");
            if (item < 0 || items < 1 || item >= items || model == null || request.Results.ContainsKey(item))
            {
                FailLocally(events, id, new ChibiProtocolException(ChibiErrorCodes.BadMessage, "malformed or repeated result message", id));
                return;
            }
            // Without the connection's checksum a blob would arrive unverified.
            foreach (var info in new[] { model, preview })
                if (info != null && !ChibiChecksums.IsValidDigest(Checksum, ChibiJson.GetString(info, Checksum)))
                {
                    FailLocally(events, id, new ChibiProtocolException(ChibiErrorCodes.BadMessage,
                        "result blob without a valid " + Checksum + " (the connection's checksum)", id));
                    return;
                }
            var result = new ChibiAvatarResult
            {
                RequestId = id,
                Item = (int)item,
                Items = (int)items,
                Format = ChibiJson.GetString(message, "format"),
                ModelSha256 = ChibiJson.GetString(model, ChibiChecksums.Sha256),
                ModelCrc32 = ChibiJson.GetString(model, ChibiChecksums.Crc32),
                Params = ChibiJson.GetObject(message, "params"),
                TimingsMs = ChibiJson.GetObject(message, "timings_ms") ?? new Dictionary<string, object>(),
            };
            request.Results[item] = result;
            request.Blobs[item + ":model"] = Expect(model);
            if (preview != null) request.Blobs[item + ":preview"] = Expect(preview);
        }

        static ExpectedBlob Expect(Dictionary<string, object> info)
        {
            return new ExpectedBlob
            {
                Size = ChibiJson.GetLong(info, "size") ?? -1,
                Sha256 = ChibiJson.GetString(info, ChibiChecksums.Sha256),
                Crc32 = ChibiJson.GetString(info, ChibiChecksums.Crc32),
            };
        }

        void OnDone(List<ChibiClientEvent> events, Dictionary<string, object> message, string id, Pending request)
        {
            long items = ChibiJson.GetLong(message, "items") ?? request.Results.Count;
            foreach (var blob in request.Blobs.Values)
                if (blob.Data == null)
                {
                    FailLocally(events, id, new ChibiProtocolException(ChibiErrorCodes.BadMessage, "done before all result chunks arrived", id));
                    return;
                }
            if (request.Results.Count != items || items < 1)
            {
                FailLocally(events, id, new ChibiProtocolException(ChibiErrorCodes.BadMessage,
                    "done announces " + items + " items, " + request.Results.Count + " results arrived", id));
                return;
            }
            pending.Remove(id);
            ended.Add(id);
            events.Add(new ChibiClientEvent { Kind = ChibiEventKind.Completed, RequestId = id, Results = new List<ChibiAvatarResult>(request.Results.Values) });
        }

        // -- helpers ----------------------------------------------------------------------
        List<ChibiClientEvent> FailLocally(List<ChibiClientEvent> events, string id, ChibiProtocolException error)
        {
            if (pending.Remove(id))
            {
                ended.Add(id);
                events.Add(new ChibiClientEvent { Kind = ChibiEventKind.Failed, RequestId = id, Error = error });
            }
            return events;
        }

        List<ChibiClientEvent> Malformed(List<ChibiClientEvent> events, string what)
        {
            var error = new ChibiProtocolException(ChibiErrorCodes.BadMessage, what);
            if (State == ChibiSessionState.AwaitWelcome) return Close(events, error);
            events.Add(new ChibiClientEvent { Kind = ChibiEventKind.Notice, Error = error });
            return events;
        }

        List<ChibiClientEvent> Close(List<ChibiClientEvent> events, ChibiProtocolException error)
        {
            State = ChibiSessionState.Closed;
            foreach (string id in new List<string>(pending.Keys))
            {
                events.Add(new ChibiClientEvent
                {
                    Kind = ChibiEventKind.Failed,
                    RequestId = id,
                    Error = new ChibiProtocolException(error.Code, error.Detail, id, fatal: true, inner: error),
                });
                ended.Add(id);
            }
            pending.Clear();
            events.Add(new ChibiClientEvent { Kind = ChibiEventKind.ConnectionFailed, Error = error });
            return events;
        }

        /// <summary>UTF-8 text of a websocket text message, or null when it is not valid UTF-8.</summary>
        public static string DecodeUtf8(byte[] data, int length)
        {
            try
            {
                return new UTF8Encoding(false, true).GetString(data, 0, length);
            }
            catch (ArgumentException)
            {
                return null;
            }
        }
    }
}
