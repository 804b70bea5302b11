// The harness's cases over the wire, against the live `chibi serve` named by --url.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using ChibiAvatar.Protocol;

namespace ChibiAvatar.Harness
{
    static partial class Program
    {
        static void Online(Dictionary<string, object> report)
        {
            ChibiAvatarClient client;
            try
            {
                // Small result chunks: a model arrives as several binary messages to reassemble.
                client = ChibiAvatarClient.ConnectAsync(url, token, new ChibiClientOptions { MaxChunkBytes = 64 * 1024 }).Result;
            }
            catch (AggregateException e)
            {
                Record("connect", false, e.InnerException.ToString());
                return;
            }
            using (client)
            {
                var w = client.Welcome;
                report["welcome"] = w.Raw;
                report["checksum"] = w.Checksum; // what the client took from the welcome (sha256 when absent)
                Record("connect", w.Version == 1 && w.ChunkBytes == 64 * 1024 && w.ParamsAvailable,
                    "welcome from " + w.Server + ", chunk_bytes " + w.ChunkBytes + ", checksum " + w.Checksum
                    + ", sources photo=" + w.PhotoAvailable + " params=" + w.ParamsAvailable);
                RunCase("params_three_in_flight", () => ParamsThreeInFlight(client));
                RunCase("photo", () => Photo(client));
                RunCase("invalid_image", () => InvalidImage(client));
                RunCase("invalid_params", () => InvalidParams(client));
                RunCase("params_too_large", () => ParamsTooLarge(client));
                RunCase("cancel", () => Cancel(client));
                RunCase("ping", () => Ping(client));
                RunCase("photo_over_max", () => PhotoOverMax(client));
                client.CloseAsync().Wait(TimeSpan.FromSeconds(10));
                RunCase("ping_after_close", () => ExpectConnectionClosed(client.PingAsync()));
            }
            RunCase("cancel_while_preparing", () => CancelWhilePreparing());
            RunCase("message_over_max", () => MessageOverMax());
            RunCase("sha256_only", () => Sha256Only());
            RunCase("unsupported_version", () => ConnectError(new ChibiClientOptions { ProtocolVersion = 2 }, token, ChibiErrorCodes.UnsupportedVersion));
            if (token != null)
            {
                RunCase("wrong_token_header", () => ConnectError(new ChibiClientOptions(), token + "x", ChibiErrorCodes.Unauthorized));
                RunCase("wrong_token_hello", () => ConnectError(new ChibiClientOptions { TokenInHello = true }, token + "x", ChibiErrorCodes.Unauthorized));
                RunCase("token_in_hello", () => TokenInHello());
            }
        }

        static void RunCase(string name, Func<Task<Dictionary<string, object>>> body)
        {
            try
            {
                var task = body();
                if (!task.Wait(CaseTimeout)) { Record(name, false, "timed out after " + CaseTimeout.TotalSeconds + " s"); return; }
                var entry = task.Result;
                Cases[name] = entry;
            }
            catch (AggregateException e)
            {
                Record(name, false, "exception: " + e.InnerException);
            }
            catch (Exception e)
            {
                Record(name, false, "exception: " + e);
            }
        }

        /// <summary>Checks one result: glTF magic, announced checksum, stage order; writes the file.</summary>
        static Dictionary<string, object> Inspect(ChibiAvatarResult result, List<ChibiProgress> progress, string fileName, string[] required)
        {
            var problems = new List<string>();
            if (result.Model == null || result.Model.Length < 12 || Encoding.ASCII.GetString(result.Model, 0, 4) != "glTF")
                problems.Add("model does not start with glTF");
            // Both digests go in the report, so the test can check them against Python's.
            string sha = result.Model == null ? "" : ChibiFraming.Sha256Hex(result.Model);
            string crc = result.Model == null ? "" : ChibiCrc32.Hex(result.Model);
            string announced = result.ModelCrc32 != null ? ChibiChecksums.Crc32 : result.ModelSha256 != null ? ChibiChecksums.Sha256 : null;
            if (announced == null) problems.Add("no checksum announced");
            if (result.ModelSha256 != null && sha != result.ModelSha256) problems.Add("sha256 " + sha + " != announced " + result.ModelSha256);
            if (result.ModelCrc32 != null && crc != result.ModelCrc32) problems.Add("crc32 " + crc + " != announced " + result.ModelCrc32);
            var stages = progress.Select(p => p.Stage).ToList();
            // Known stages arrive in PROTOCOL.md order: (item, stage index) never goes back.
            var keys = progress.Where(p => p.StageIndex >= 0).Select(p => p.Item * 100 + p.StageIndex).ToList();
            for (int i = 1; i < keys.Count; i++)
                if (keys[i] < keys[i - 1]) problems.Add("stage " + stages[i] + " after " + stages[i - 1]);
            foreach (string stage in required)
                if (!stages.Contains(stage)) problems.Add("missing stage " + stage);
            if (progress.Any(p => p.RequestId != result.RequestId)) problems.Add("progress of another request");
            string vrm = null;
            try { vrm = ChibiGlb.VrmVersion(result.Model); }
            catch (FormatException e) { problems.Add("glb container: " + e.Message); }
            string expectedVrm = result.Format == "vrm1" ? "1.0" : result.Format == "vrm0" ? "0.x" : null;
            if (vrm != expectedVrm) problems.Add("format " + result.Format + " but the file's VRM version is " + (vrm ?? "none"));
            string path = Path.Combine(outDir, fileName);
            if (result.Model != null) File.WriteAllBytes(path, result.Model);
            return new Dictionary<string, object>
            {
                { "ok", problems.Count == 0 },
                { "detail", problems.Count == 0 ? fileName + ": " + result.Model.Length + " bytes, stages " + string.Join(",", stages) : string.Join("; ", problems) },
                { "path", path }, { "bytes", result.Model == null ? 0 : result.Model.Length }, { "sha256", sha },
                { "crc32", crc }, { "checksum", announced },
                { "stages", stages.Cast<object>().ToList() }, { "format", result.Format }, { "vrm", vrm },
            };
        }

        static Action<ChibiProgress> Collect(List<ChibiProgress> into)
        {
            return p => { lock (into) into.Add(p); };
        }

        static async Task<Dictionary<string, object>> ParamsThreeInFlight(ChibiAvatarClient client)
        {
            var progressGlb = new List<ChibiProgress>();
            var progressVrm = new List<ChibiProgress>();
            var progressVrm0 = new List<ChibiProgress>();
            // All three are on the wire before any finishes: their messages interleave on one connection.
            var glb = client.GenerateFromParamsAsync("{\"hair_style\": \"bob\", \"glasses\": \"round\"}",
                new ChibiRequestOptions { Format = "glb" }, Collect(progressGlb));
            var vrm = client.GenerateFromParamsAsync("{\"hair_color\": \"#aa3322\"}",
                new ChibiRequestOptions { Format = "vrm1", ReturnParams = true, ReturnPreview = true }, Collect(progressVrm));
            var vrm0 = client.GenerateFromParamsAsync("{\"hair_style\": \"twintails\"}",
                new ChibiRequestOptions { Format = "vrm0", Thumbnail = false }, Collect(progressVrm0));
            await Task.WhenAll(glb, vrm, vrm0);
            var required = new[] { "started", "params", "built", "exported" };
            var a = Inspect(glb.Result, progressGlb, "params.glb", required);
            var b = Inspect(vrm.Result, progressVrm, "params.vrm", required);
            var c = Inspect(vrm0.Result, progressVrm0, "params_vrm0.vrm", required);
            var problems = new List<string>();
            foreach (var entry in new[] { a, b, c })
                if (!(bool)entry["ok"]) problems.Add(entry["format"] + ": " + entry["detail"]);
            var vr = vrm.Result;
            if (vr.Preview == null || vr.Preview.Length < 8 || vr.Preview[1] != 'P' || vr.Preview[2] != 'N' || vr.Preview[3] != 'G')
                problems.Add("no PNG preview");
            if (vr.Params == null || ChibiJson.GetString(vr.Params, "hair_color") != "#aa3322")
                problems.Add("returned params lack hair_color #aa3322: " + vr.ParamsJson);
            if (glb.Result.Format != "glb" || vr.Format != "vrm1" || vrm0.Result.Format != "vrm0")
                problems.Add("formats " + glb.Result.Format + "/" + vr.Format + "/" + vrm0.Result.Format);
            return new Dictionary<string, object>
            {
                { "ok", problems.Count == 0 },
                { "detail", problems.Count == 0 ? a["detail"] + " | " + b["detail"] + " | " + c["detail"] + " | preview " + vr.Preview.Length + " bytes" : string.Join("; ", problems) },
                { "glb", a }, { "vrm1", b }, { "vrm0", c }, { "returned_params", vr.Params },
            };
        }

        static async Task<Dictionary<string, object>> Photo(ChibiAvatarClient client)
        {
            byte[] jpeg = File.ReadAllBytes(photoPath);
            var progress = new List<ChibiProgress>();
            try
            {
                var result = await client.GenerateFromPhotoAsync(jpeg, new ChibiRequestOptions { Format = "vrm1" }, Collect(progress));
                var entry = Inspect(result, progress, "photo.vrm", new[] { "started", "decoded", "face_found", "params", "built", "exported" });
                entry["outcome"] = "avatar";
                return entry;
            }
            catch (ChibiProtocolException e)
            {
                // Without photo models the server must say so with not_available (welcome.sources.photo false).
                bool expected = !client.Welcome.PhotoAvailable && e.Code == ChibiErrorCodes.NotAvailable;
                return new Dictionary<string, object>
                {
                    { "ok", expected }, { "outcome", e.Code },
                    { "detail", (expected ? "photo path not available on this server: " : "unexpected error: ") + e.Message },
                };
            }
        }

        static async Task<Dictionary<string, object>> InvalidImage(ChibiAvatarClient client)
        {
            var noise = new byte[4096];
            new Random(1).NextBytes(noise);
            string expected = client.Welcome.PhotoAvailable ? ChibiErrorCodes.InvalidImage : ChibiErrorCodes.NotAvailable;
            return await ExpectError(client.GenerateFromPhotoAsync(noise), expected, null);
        }

        static async Task<Dictionary<string, object>> InvalidParams(ChibiAvatarClient client)
        {
            return await ExpectError(client.GenerateFromParamsAsync("{\"hair_style\": \"mohawk-of-doom\"}"), ChibiErrorCodes.InvalidParams, "hair_style");
        }

        static async Task<Dictionary<string, object>> ParamsTooLarge(ChibiAvatarClient client)
        {
            // over max_json_bytes: the server would answer without an id, so it waited forever
            var task = client.GenerateFromParamsAsync("{\"name\": \"" + new string('x', 70000) + "\"}");
            if (await Task.WhenAny(task, Task.Delay(10000)).ConfigureAwait(false) != task)
                return new Dictionary<string, object> { { "ok", false }, { "detail", "still pending after 10 s" } };
            return await ExpectError(task, ChibiErrorCodes.FrameTooLarge, null);
        }

        static async Task<Dictionary<string, object>> ExpectError(Task<ChibiAvatarResult> task, string code, string field)
        {
            try
            {
                await task;
                return new Dictionary<string, object> { { "ok", false }, { "detail", "succeeded; expected " + code } };
            }
            catch (ChibiProtocolException e)
            {
                bool ok = e.Code == code && (field == null || e.Field == field) && e.RequestId != null && !e.Fatal;
                return new Dictionary<string, object>
                {
                    { "ok", ok }, { "code", e.Code }, { "field", e.Field },
                    { "detail", (ok ? "" : "expected " + code + " (field " + field + "), got ") + e.Message + (e.Field != null ? " [field " + e.Field + "]" : "") },
                };
            }
        }

        static async Task<Dictionary<string, object>> Cancel(ChibiAvatarClient client)
        {
            using (var cts = new CancellationTokenSource())
            {
                var stages = new List<string>();
                // Cancel as soon as a worker picked it up: the high-quality build takes seconds.
                Action<ChibiProgress> onProgress = p => { lock (stages) stages.Add(p.Stage); if (p.Stage == "started") cts.Cancel(); };
                var watch = System.Diagnostics.Stopwatch.StartNew();
                try
                {
                    await client.GenerateFromParamsAsync("{}", new ChibiRequestOptions { Quality = "high" }, onProgress, cts.Token);
                    return new Dictionary<string, object> { { "ok", false }, { "detail", "finished despite the cancel; stages " + string.Join(",", stages) } };
                }
                catch (OperationCanceledException e)
                {
                    var server = e.InnerException as ChibiProtocolException;
                    bool ok = server != null && server.Code == ChibiErrorCodes.Cancelled && !stages.Contains("exported");
                    return new Dictionary<string, object>
                    {
                        { "ok", ok }, { "code", server == null ? null : server.Code }, { "ms", watch.Elapsed.TotalMilliseconds },
                        { "detail", e.Message + " after " + watch.ElapsedMilliseconds + " ms, stages " + string.Join(",", stages) },
                    };
                }
            }
        }

        static async Task<Dictionary<string, object>> CancelWhilePreparing()
        {
            // Cancelled while the photo is checksummed and cut into chunks: the cancel went out
            // before the request about half the time, the server answered unknown_id, then held
            // the request waiting for a photo (four of them: every later request was busy).
            using (var client = await ChibiAvatarClient.ConnectAsync(url, token))
            {
                var photo = new byte[15 * 1024 * 1024]; // not an image: the order of messages is the point
                new Random(3).NextBytes(photo);
                double slowest = 0;
                for (int i = 0; i < 8; i++)
                {
                    using (var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(5 + 5 * i)))
                    {
                        var watch = System.Diagnostics.Stopwatch.StartNew();
                        try { await client.GenerateFromPhotoAsync(photo, null, null, cts.Token); }
                        catch (OperationCanceledException) { }
                        catch (ChibiProtocolException) { } // ended before the cancel (invalid_image)
                        slowest = Math.Max(slowest, watch.Elapsed.TotalMilliseconds);
                    }
                }
                var after = await client.GenerateFromParamsAsync("{}", new ChibiRequestOptions { Format = "glb" });
                var unknown = client.Notices.Count(n => n.Code == ChibiErrorCodes.UnknownId);
                bool ok = slowest < 5000 && unknown == 0 && after.Model.Length > 0;
                return new Dictionary<string, object>
                {
                    { "ok", ok }, { "detail", "slowest cancel " + slowest.ToString("0") + " ms, unknown_id notices " + unknown + ", then a " + after.Model.Length + "-byte glb" },
                };
            }
        }

        static async Task<Dictionary<string, object>> PhotoOverMax(ChibiAvatarClient client)
        {
            // refused before a byte is uploaded: the task has failed when the call returns
            var photo = new byte[client.Welcome.Limit("max_photo_bytes", 0) + 1];
            var task = client.GenerateFromPhotoAsync(photo);
            bool immediate = task.IsFaulted;
            var result = await ExpectError(task, ChibiErrorCodes.PayloadTooLarge, null);
            result["ok"] = (bool)result["ok"] && immediate;
            result["detail"] += immediate ? "" : " (only after uploading)";
            return result;
        }

        static async Task<Dictionary<string, object>> MessageOverMax()
        {
            // a result larger than the client's MaxMessageBytes fails with that code, not connection_closed
            using (var client = await ChibiAvatarClient.ConnectAsync(url, token, new ChibiClientOptions { MaxMessageBytes = 100000 }))
            {
                try
                {
                    await client.GenerateFromParamsAsync("{}", new ChibiRequestOptions { Format = "glb" });
                    return new Dictionary<string, object> { { "ok", false }, { "detail", "a 450 kB model arrived in 100 kB messages?" } };
                }
                catch (ChibiProtocolException e)
                {
                    return new Dictionary<string, object> { { "ok", e.Code == ChibiErrorCodes.FrameTooLarge }, { "code", e.Code }, { "detail", e.Message } };
                }
            }
        }

        static async Task<Dictionary<string, object>> ExpectConnectionClosed(Task task)
        {
            try
            {
                await task;
                return new Dictionary<string, object> { { "ok", false }, { "detail", "succeeded on a closed client" } };
            }
            catch (ChibiProtocolException e)
            {
                return new Dictionary<string, object> { { "ok", e.Code == ChibiErrorCodes.ConnectionClosed }, { "code", e.Code }, { "detail", e.Message } };
            }
            catch (Exception e)
            {
                return new Dictionary<string, object> { { "ok", false }, { "detail", e.GetType().Name + ": " + e.Message } };
            }
        }

        static async Task<Dictionary<string, object>> Ping(ChibiAvatarClient client)
        {
            // Also proves the connection survived the errors and the cancel above.
            var rtt = await client.PingAsync();
            return new Dictionary<string, object> { { "ok", client.IsOpen }, { "ms", rtt.TotalMilliseconds }, { "detail", "round trip " + rtt.TotalMilliseconds.ToString("0.0") + " ms" } };
        }

        static async Task<Dictionary<string, object>> ConnectError(ChibiClientOptions options, string useToken, string expected)
        {
            try
            {
                using (await ChibiAvatarClient.ConnectAsync(url, useToken, options)) { }
                return new Dictionary<string, object> { { "ok", false }, { "detail", "connected; expected " + expected } };
            }
            catch (ChibiProtocolException e)
            {
                bool ok = e.Code == expected && e.Fatal
                    && (expected != ChibiErrorCodes.UnsupportedVersion || e.SupportedVersions.Contains(1));
                return new Dictionary<string, object>
                {
                    { "ok", ok }, { "code", e.Code }, { "supported", e.SupportedVersions.Cast<object>().ToList() },
                    { "detail", (ok ? "" : "expected " + expected + ", got ") + e.Message },
                };
            }
        }

        /// <summary>A second connection that asks for sha256 only: results and an upload still check out.</summary>
        static async Task<Dictionary<string, object>> Sha256Only()
        {
            var options = new ChibiClientOptions { Sha256Only = true, MaxChunkBytes = 64 * 1024 };
            using (var client = await ChibiAvatarClient.ConnectAsync(url, token, options))
            {
                var problems = new List<string>();
                if (client.Welcome.Checksum != ChibiChecksums.Sha256) problems.Add("welcome chose " + client.Welcome.Checksum);
                var progress = new List<ChibiProgress>();
                var result = await client.GenerateFromParamsAsync("{\"hair_style\": \"bob\"}",
                    new ChibiRequestOptions { Format = "vrm1", ReturnPreview = true }, Collect(progress));
                var model = Inspect(result, progress, "sha256_only.vrm", new[] { "started", "params", "built", "exported" });
                if (!(bool)model["ok"]) problems.Add((string)model["detail"]);
                if (result.ModelCrc32 != null) problems.Add("crc32 announced on a sha256 connection");
                if (result.Preview == null || result.Preview[1] != 'P') problems.Add("no PNG preview");
                // A photo upload: its chunk headers carry sha256, which the server verifies.
                string photo = "not_available";
                try
                {
                    var photoProgress = new List<ChibiProgress>();
                    var fromPhoto = await client.GenerateFromPhotoAsync(File.ReadAllBytes(photoPath), null, Collect(photoProgress));
                    var entry = Inspect(fromPhoto, photoProgress, "sha256_only_photo.vrm", new[] { "decoded", "face_found" });
                    if (!(bool)entry["ok"]) problems.Add("photo: " + entry["detail"]);
                    photo = "avatar";
                }
                catch (ChibiProtocolException e)
                {
                    if (client.Welcome.PhotoAvailable || e.Code != ChibiErrorCodes.NotAvailable) problems.Add("photo: " + e.Code + " " + e.Message);
                }
                await client.CloseAsync();
                return new Dictionary<string, object>
                {
                    { "ok", problems.Count == 0 }, { "checksum", client.Welcome.Checksum }, { "model", model }, { "photo", photo },
                    { "detail", problems.Count == 0 ? "checksum " + client.Welcome.Checksum + ", " + model["detail"] + ", photo " + photo : string.Join("; ", problems) },
                };
            }
        }

        static async Task<Dictionary<string, object>> TokenInHello()
        {
            using (var client = await ChibiAvatarClient.ConnectAsync(url, token, new ChibiClientOptions { TokenInHello = true }))
            {
                await client.PingAsync();
                return new Dictionary<string, object> { { "ok", client.IsOpen }, { "detail", "welcome with the token in hello" } };
            }
        }
    }
}
