// Async client for the chibi websocket service on System.Net.WebSockets.ClientWebSocket.
// No UnityEngine dependency: runs in Unity (not WebGL: browsers have no ClientWebSocket)
// and in any .NET/Mono program.
//
//   using (var client = await ChibiAvatarClient.ConnectAsync("ws://127.0.0.1:8765/ws", token))
//   {
//       var result = await client.GenerateFromPhotoAsync(jpegBytes,
//           new ChibiRequestOptions { Format = "vrm1" }, p => Debug.Log(p), cancellationToken);
//       File.WriteAllBytes("me.vrm", result.Model);
//   }
//
// Progress callbacks run on the SynchronizationContext that was current at ConnectAsync
// (Unity's main thread when connected from a MonoBehaviour), or on a pool thread without one.
using System;
using System.Collections.Generic;
using System.IO;
using System.Net;
using System.Net.WebSockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace ChibiAvatar.Protocol
{
    public sealed class ChibiClientOptions
    {
        /// <summary>Sent in hello as `client`.</summary>
        public string ClientName = "chibi-unity-bridge/0.1.0";
        /// <summary>Send the token in hello instead of the Authorization header.</summary>
        public bool TokenInHello;
        /// <summary>Largest result chunk payload wanted (>= 1024), or null for the server's setting.</summary>
        public int? MaxChunkBytes;
        /// <summary>Ask for SHA-256 blob checksums only. By default hello asks for CRC-32 first (under
        /// a third of SHA-256's cost on Mono; a checksum here catches lost or misplaced chunks,
        /// tampering is TLS's job) and the welcome says which one the connection uses.</summary>
        public bool Sha256Only;
        /// <summary>The protocol version stated in hello; change only to test version negotiation.</summary>
        public int ProtocolVersion = ChibiProtocol.Version;
        public TimeSpan ConnectTimeout = TimeSpan.FromSeconds(15);
        /// <summary>How long a cancelled request waits for the server's `cancelled` before giving up locally.</summary>
        public TimeSpan CancelGrace = TimeSpan.FromSeconds(10);
        /// <summary>Incoming websocket messages over this size close the connection.</summary>
        public long MaxMessageBytes = 256L * 1024 * 1024;
        /// <summary>Where progress callbacks run; null: SynchronizationContext.Current at connect time.</summary>
        public SynchronizationContext CallbackContext;
        /// <summary>Hook to set proxies, certificates or headers on the socket before it connects.</summary>
        public Action<ClientWebSocketOptions> ConfigureSocket;
    }

    public sealed class ChibiAvatarClient : IDisposable
    {
        sealed class PendingRequest
        {
            public TaskCompletionSource<IList<ChibiAvatarResult>> Completion =
                new TaskCompletionSource<IList<ChibiAvatarResult>>(TaskCreationOptions.RunContinuationsAsynchronously);
            public Action<ChibiProgress> OnProgress;
            public CancellationToken Token;
            public bool CancelSent;
            public CancellationTokenRegistration Registration;
        }

        readonly ClientWebSocket socket;
        readonly ChibiClientSession session;
        readonly ChibiClientOptions options;
        readonly SynchronizationContext callbackContext;
        readonly SemaphoreSlim sendLock = new SemaphoreSlim(1, 1);
        readonly object gate = new object(); // guards session, requests, pings, notices
        readonly Dictionary<string, PendingRequest> requests = new Dictionary<string, PendingRequest>();
        readonly Dictionary<long, TaskCompletionSource<bool>> pings = new Dictionary<long, TaskCompletionSource<bool>>();
        readonly List<ChibiProtocolException> notices = new List<ChibiProtocolException>();
        Task reader;
        long nextNonce;

        ChibiAvatarClient(ClientWebSocket socket, ChibiClientSession session, ChibiClientOptions options)
        {
            this.socket = socket;
            this.session = session;
            this.options = options;
            callbackContext = options.CallbackContext ?? SynchronizationContext.Current;
        }

        /// <summary>The server's welcome: sources available now, formats, limits.</summary>
        public ChibiWelcome Welcome { get { return session.Welcome; } }

        /// <summary>Non-terminal errors the server sent about messages (unknown_id after a late cancel...).</summary>
        /// <summary>Errors no request owns, the latest <see cref="NoticesKept"/>.</summary>
        public IList<ChibiProtocolException> Notices { get { lock (gate) return notices.ToArray(); } }
        public const int NoticesKept = 100;

        void AddNotice(ChibiProtocolException notice) // under gate
        {
            if (notices.Count == NoticesKept) notices.RemoveAt(0);
            notices.Add(notice);
        }

        public bool IsOpen { get { return socket.State == WebSocketState.Open && session.State == ChibiSessionState.Open; } }

        /// <summary>
        /// Opens the websocket (token as `Authorization: Bearer`, or in hello), says hello and returns
        /// once the welcome arrived. Throws <see cref="ChibiProtocolException"/>: unauthorized,
        /// unsupported_version (see SupportedVersions), connection_refused, connection_closed...
        /// </summary>
        public static async Task<ChibiAvatarClient> ConnectAsync(string url, string token = null,
            ChibiClientOptions options = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            options = options ?? new ChibiClientOptions();
            var socket = new ClientWebSocket();
            if (token != null && !options.TokenInHello) socket.Options.SetRequestHeader("Authorization", "Bearer " + token);
            if (options.ConfigureSocket != null) options.ConfigureSocket(socket.Options);
            var client = new ChibiAvatarClient(socket, new ChibiClientSession(), options);
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                timeout.CancelAfter(options.ConnectTimeout);
                Exception refused = null;
                try
                {
                    await socket.ConnectAsync(new Uri(url), timeout.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (!(e is OperationCanceledException) || !cancellationToken.IsCancellationRequested)
                {
                    socket.Dispose();
                    refused = e;
                }
                if (refused != null)
                {
                    string header = token != null && !options.TokenInHello ? "Bearer " + token : null;
                    throw await UpgradeErrorAsync(url, header, refused).ConfigureAwait(false);
                }
                try
                {
                    await client.HandshakeAsync(token, timeout.Token, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception)
                {
                    socket.Dispose();
                    throw;
                }
            }
            client.reader = Task.Run(() => client.ReadLoopAsync());
            return client;
        }

        async Task HandshakeAsync(string token, CancellationToken timeout, CancellationToken callerToken)
        {
            string hello = session.Hello(options.ProtocolVersion, options.TokenInHello ? token : null, options.ClientName, options.MaxChunkBytes,
                options.Sha256Only ? new[] { ChibiChecksums.Sha256 } : ChibiChecksums.Preferred);
            await SendAsync(new ChibiOutgoing { Text = hello }).ConfigureAwait(false);
            var buffer = new MemoryStream();
            WebSocketReceiveResult received;
            try
            {
                received = await ReceiveMessageAsync(buffer, timeout).ConfigureAwait(false);
            }
            catch (OperationCanceledException e) when (!callerToken.IsCancellationRequested)
            {
                throw new ChibiProtocolException(ChibiErrorCodes.Timeout, "no welcome within the connect timeout", inner: e);
            }
            catch (WebSocketException e)
            {
                throw new ChibiProtocolException(ChibiErrorCodes.ConnectionClosed, "connection lost during hello: " + e.Message, inner: e);
            }
            List<ChibiClientEvent> events;
            if (received.MessageType == WebSocketMessageType.Close)
                events = session.ConnectionClosed((int?)socket.CloseStatus, socket.CloseStatusDescription, null);
            else if (received.MessageType == WebSocketMessageType.Text)
                events = session.ReceiveText(ChibiClientSession.DecodeUtf8(buffer.GetBuffer(), (int)buffer.Length) ?? "");
            else
                events = session.ConnectionClosed(null, ChibiErrorCodes.BadMessage, new InvalidDataException("binary message before welcome"));
            foreach (var e in events)
                if (e.Kind == ChibiEventKind.ConnectionFailed)
                {
                    // After a fatal error the server closes with 1008; close our side without waiting long.
                    try { await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None).ConfigureAwait(false); }
                    catch (Exception) { }
                    throw e.Error;
                }
        }

        // -- requests ------------------------------------------------------------------------
        /// <summary>Photo bytes (JPEG/PNG/WebP/BMP/GIF/HEIC/AVIF) -> the first (largest face's) avatar.</summary>
        public async Task<ChibiAvatarResult> GenerateFromPhotoAsync(byte[] photo, ChibiRequestOptions requestOptions = null,
            Action<ChibiProgress> onProgress = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            var results = await GenerateAllFromPhotoAsync(photo, requestOptions, onProgress, cancellationToken).ConfigureAwait(false);
            return results[0];
        }

        /// <summary>Photo bytes -> one avatar per face with AllFaces, else one.</summary>
        public Task<IList<ChibiAvatarResult>> GenerateAllFromPhotoAsync(byte[] photo, ChibiRequestOptions requestOptions = null,
            Action<ChibiProgress> onProgress = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            if (photo == null) throw new ArgumentNullException(nameof(photo));
            return RunAsync(null, photo, requestOptions, onProgress, cancellationToken);
        }

        /// <summary>An AvatarParams JSON object (text; missing fields take defaults) -> avatar.</summary>
        public async Task<ChibiAvatarResult> GenerateFromParamsAsync(string paramsJson, ChibiRequestOptions requestOptions = null,
            Action<ChibiProgress> onProgress = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            Dictionary<string, object> avatarParams;
            try
            {
                avatarParams = ChibiJson.ParseObject(string.IsNullOrEmpty(paramsJson) ? "{}" : paramsJson);
            }
            catch (FormatException e)
            {
                throw new ArgumentException("paramsJson is not a JSON object: " + e.Message, nameof(paramsJson));
            }
            var results = await RunAsync(avatarParams, null, requestOptions, onProgress, cancellationToken).ConfigureAwait(false);
            return results[0];
        }

        async Task<IList<ChibiAvatarResult>> RunAsync(Dictionary<string, object> avatarParams, byte[] photo,
            ChibiRequestOptions requestOptions, Action<ChibiProgress> onProgress, CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var request = new PendingRequest { OnProgress = onProgress, Token = cancellationToken };
            string id;
            List<ChibiOutgoing> messages;
            lock (gate)
            {
                if (session.State != ChibiSessionState.Open)
                    throw new ChibiProtocolException(ChibiErrorCodes.ConnectionClosed, "the connection is closed");
                id = session.NextId();
                messages = photo != null
                    ? session.StartPhotoRequest(id, photo, requestOptions)
                    : new List<ChibiOutgoing> { session.StartParamsRequest(id, avatarParams, requestOptions) };
                requests[id] = request;
            }
            bool cancellable = false;
            try
            {
                foreach (var message in messages)
                {
                    // Never cancel a send midway: ClientWebSocket aborts the whole connection then.
                    if (cancellationToken.IsCancellationRequested && !message.IsText) break;
                    if (request.Completion.Task.IsCompleted) break; // the server ended it (payload_too_large...)
                    await SendAsync(message).ConfigureAwait(false);
                    // Registered once the request is sent, so a cancel never overtakes it (the
                    // server would answer unknown_id and then wait for a photo that never comes).
                    if (!cancellable)
                    {
                        request.Registration = cancellationToken.Register(() => RequestCancel(id));
                        cancellable = true;
                    }
                }
            }
            catch (Exception e) when (e is WebSocketException || e is ObjectDisposedException || e is InvalidOperationException)
            {
                Complete(id, null, new ChibiProtocolException(ChibiErrorCodes.ConnectionClosed, "send failed: " + e.Message, id, inner: e));
            }
            return await request.Completion.Task.ConfigureAwait(false);
        }

        void RequestCancel(string id)
        {
            PendingRequest request;
            lock (gate)
            {
                if (!requests.TryGetValue(id, out request) || request.CancelSent) return;
                request.CancelSent = true;
            }
            Task.Run(async () =>
            {
                try { await SendAsync(new ChibiOutgoing { Text = session.Cancel(id) }).ConfigureAwait(false); }
                catch (Exception) { } // the connection is gone: the reader fails the request
                await Task.Delay(options.CancelGrace).ConfigureAwait(false);
                lock (gate) session.Abandon(id); // the server never answered: give up locally
                Complete(id, null, new ChibiProtocolException(ChibiErrorCodes.Cancelled, "cancelled (the server did not confirm in time)", id));
            });
        }

        /// <summary>Application-level round trip (a `ping` message).</summary>
        public async Task<TimeSpan> PingAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            var pong = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            long nonce;
            lock (gate)
            {
                if (session.State != ChibiSessionState.Open)
                    throw new ChibiProtocolException(ChibiErrorCodes.ConnectionClosed, "the connection is closed");
                nonce = ++nextNonce;
                pings[nonce] = pong;
            }
            var watch = System.Diagnostics.Stopwatch.StartNew();
            try
            {
                await SendAsync(new ChibiOutgoing { Text = session.Ping(nonce) }).ConfigureAwait(false);
            }
            catch (Exception e) when (e is WebSocketException || e is ObjectDisposedException || e is InvalidOperationException)
            {
                lock (gate) pings.Remove(nonce);
                throw new ChibiProtocolException(ChibiErrorCodes.ConnectionClosed, "send failed: " + e.Message, inner: e);
            }
            using (cancellationToken.Register(() => pong.TrySetCanceled()))
                await pong.Task.ConfigureAwait(false);
            return watch.Elapsed;
        }

        // -- I/O ----------------------------------------------------------------------------
        async Task SendAsync(ChibiOutgoing message)
        {
            await sendLock.WaitAsync().ConfigureAwait(false);
            try
            {
                if (message.IsText)
                {
                    byte[] utf8 = Encoding.UTF8.GetBytes(message.Text);
                    await socket.SendAsync(new ArraySegment<byte>(utf8), WebSocketMessageType.Text, true, CancellationToken.None).ConfigureAwait(false);
                }
                else
                {
                    await socket.SendAsync(new ArraySegment<byte>(message.Binary), WebSocketMessageType.Binary, true, CancellationToken.None).ConfigureAwait(false);
                }
            }
            finally
            {
                sendLock.Release();
            }
        }

        async Task<WebSocketReceiveResult> ReceiveMessageAsync(MemoryStream into, CancellationToken cancellationToken)
        {
            into.SetLength(0);
            var chunk = new byte[64 * 1024];
            while (true)
            {
                var received = await socket.ReceiveAsync(new ArraySegment<byte>(chunk), cancellationToken).ConfigureAwait(false);
                if (received.MessageType == WebSocketMessageType.Close) return received;
                into.Write(chunk, 0, received.Count);
                if (into.Length > options.MaxMessageBytes)
                    throw new ChibiProtocolException(ChibiErrorCodes.FrameTooLarge, "a message over " + options.MaxMessageBytes + " bytes");
                if (received.EndOfMessage) return received;
            }
        }

        async Task ReadLoopAsync()
        {
            var buffer = new MemoryStream(1024 * 1024);
            Exception failure = null;
            try
            {
                while (true)
                {
                    var received = await ReceiveMessageAsync(buffer, CancellationToken.None).ConfigureAwait(false);
                    if (received.MessageType == WebSocketMessageType.Close) break;
                    List<ChibiClientEvent> events;
                    lock (gate)
                    {
                        if (received.MessageType == WebSocketMessageType.Binary)
                            events = session.ReceiveBinary(buffer.GetBuffer(), (int)buffer.Length);
                        else
                        {
                            string text = ChibiClientSession.DecodeUtf8(buffer.GetBuffer(), (int)buffer.Length);
                            events = text != null ? session.ReceiveText(text)
                                : session.ConnectionClosed(1007, null, new InvalidDataException("text message is not UTF-8"));
                        }
                    }
                    Dispatch(events);
                    if (session.State == ChibiSessionState.Closed) break;
                }
            }
            catch (Exception e)
            {
                failure = e;
            }
            // Answer the server's close, or close after a fatal error; abort after a local failure.
            if (socket.State == WebSocketState.CloseReceived || (socket.State == WebSocketState.Open && failure == null))
            {
                try { await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None).ConfigureAwait(false); }
                catch (Exception) { }
            }
            else if (socket.State == WebSocketState.Open)
            {
                socket.Abort();
            }
            List<ChibiClientEvent> closing;
            lock (gate) closing = session.ConnectionClosed((int?)socket.CloseStatus, socket.CloseStatusDescription, failure);
            Dispatch(closing);
            FailEverything(new ChibiProtocolException(ChibiErrorCodes.ConnectionClosed, "connection closed"));
        }

        void Dispatch(List<ChibiClientEvent> events)
        {
            foreach (var e in events)
            {
                switch (e.Kind)
                {
                    case ChibiEventKind.Progress:
                        PendingRequest request;
                        lock (gate) requests.TryGetValue(e.RequestId, out request);
                        if (request != null && request.OnProgress != null) Post(request.OnProgress, e.Progress);
                        break;
                    case ChibiEventKind.Completed:
                        Complete(e.RequestId, e.Results, null);
                        break;
                    case ChibiEventKind.Failed:
                        Complete(e.RequestId, null, e.Error);
                        break;
                    case ChibiEventKind.Notice:
                        lock (gate) AddNotice(e.Error);
                        break;
                    case ChibiEventKind.Pong:
                        TaskCompletionSource<bool> pong = null;
                        lock (gate)
                        {
                            if (e.Nonce is long nonce && pings.TryGetValue(nonce, out pong)) pings.Remove(nonce);
                        }
                        if (pong != null) pong.TrySetResult(true);
                        break;
                    case ChibiEventKind.ConnectionFailed:
                        lock (gate) AddNotice(e.Error);
                        FailEverything(e.Error);
                        break;
                }
            }
        }

        void Post(Action<ChibiProgress> callback, ChibiProgress progress)
        {
            if (callbackContext != null)
            {
                callbackContext.Post(_ => callback(progress), null);
                return;
            }
            try { callback(progress); }
            catch (Exception e) // a throwing callback must not kill the reader
            {
                lock (gate) AddNotice(new ChibiProtocolException(ChibiErrorCodes.InternalError, "progress callback threw: " + e.Message, progress.RequestId, inner: e));
            }
        }

        /// <summary>Ends one request's task: results, or an error (OperationCanceledException when the caller cancelled).</summary>
        void Complete(string id, List<ChibiAvatarResult> results, ChibiProtocolException error)
        {
            PendingRequest request;
            lock (gate)
            {
                if (!requests.TryGetValue(id, out request)) return;
                requests.Remove(id);
            }
            request.Registration.Dispose();
            if (request.Token.IsCancellationRequested)
            {
                string why = error != null ? "the server answered " + error.Code : "it finished before the cancel arrived";
                request.Completion.TrySetException(new OperationCanceledException("request " + id + " cancelled (" + why + ")", error, request.Token));
            }
            else if (error != null)
                request.Completion.TrySetException(error);
            else
                request.Completion.TrySetResult(results);
        }

        void FailEverything(ChibiProtocolException error)
        {
            List<string> ids;
            List<TaskCompletionSource<bool>> pongs;
            lock (gate)
            {
                ids = new List<string>(requests.Keys);
                pongs = new List<TaskCompletionSource<bool>>(pings.Values);
                pings.Clear();
            }
            foreach (string id in ids)
                Complete(id, null, new ChibiProtocolException(error.Code, error.Detail, id, fatal: true, inner: error));
            foreach (var pong in pongs) pong.TrySetException(error);
        }

        /// <summary>
        /// Why the websocket upgrade failed. .NET puts the HTTP status in the message ("... status
        /// code '401' ..."); Mono's ClientWebSocket only says "Unable to connect", so then one plain
        /// GET of the same URL with the same Authorization header asks the server for its status.
        /// </summary>
        static async Task<ChibiProtocolException> UpgradeErrorAsync(string url, string authorization, Exception e)
        {
            string text = e.Message + (e.InnerException != null ? " " + e.InnerException.Message : "");
            int status = StatusIn(text);
            if (status == 0 && !(e is OperationCanceledException)) status = await ProbeStatusAsync(url, authorization).ConfigureAwait(false);
            string code = status == 401 ? ChibiErrorCodes.Unauthorized
                : e is OperationCanceledException ? ChibiErrorCodes.Timeout
                : status == 403 || status == 404 || status == 503 ? ChibiErrorCodes.ConnectionRefused
                : ChibiErrorCodes.ConnectionClosed;
            string detail = status != 0 ? " (HTTP " + status + ")" : "";
            return new ChibiProtocolException(code, "could not open " + url + detail + ": " + text, fatal: true, inner: e);
        }

        static int StatusIn(string text)
        {
            foreach (int status in new[] { 401, 403, 404, 503 })
                if (text.Contains("'" + status + "'") || text.Contains(" " + status + " ")) return status;
            return 0;
        }

        static async Task<int> ProbeStatusAsync(string url, string authorization)
        {
            try
            {
                var http = new UriBuilder(url);
                http.Scheme = http.Scheme == "wss" ? "https" : "http";
                var request = (HttpWebRequest)WebRequest.Create(http.Uri);
                request.Timeout = 5000;
                request.Headers["Upgrade"] = "websocket"; // the server checks tokens on upgrade requests only
                if (authorization != null) request.Headers[HttpRequestHeader.Authorization] = authorization;
                using (var response = (HttpWebResponse)await request.GetResponseAsync().ConfigureAwait(false))
                    return (int)response.StatusCode;
            }
            catch (WebException w)
            {
                var response = w.Response as HttpWebResponse;
                return response != null ? (int)response.StatusCode : 0;
            }
            catch (Exception)
            {
                return 0;
            }
        }

        // -- closing ---------------------------------------------------------------------------
        /// <summary>Closes the connection; requests still in flight fail with connection_closed.</summary>
        public async Task CloseAsync()
        {
            if (socket.State == WebSocketState.Open || socket.State == WebSocketState.CloseReceived)
            {
                using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
                {
                    try { await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "", timeout.Token).ConfigureAwait(false); }
                    catch (Exception) { socket.Abort(); }
                }
            }
            if (reader != null) await reader.ConfigureAwait(false);
        }

        public void Dispose()
        {
            if (socket.State == WebSocketState.Open)
            {
                try { CloseAsync().Wait(TimeSpan.FromSeconds(5)); }
                catch (Exception) { }
            }
            socket.Abort();
            socket.Dispose();
            FailEverything(new ChibiProtocolException(ChibiErrorCodes.ConnectionClosed, "the client was disposed"));
        }
    }
}
