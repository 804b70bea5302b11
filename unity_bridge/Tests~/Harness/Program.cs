// Console test harness for the Unity bridge's protocol core (Runtime/Protocol/*.cs), run against
// a live `chibi serve`. Unity ignores folders ending in "~", so this never enters a Unity project.
//
//   mcs -langversion:7 -out:harness.exe Runtime/Protocol/*.cs Tests~/Harness/Program.cs
//   mono harness.exe --url ws://127.0.0.1:8765/ws --token T --photo face.jpg --out DIR --report report.json
//
// It runs offline codec checks, then cases over the wire, and writes one JSON report:
// {"welcome": {...}, "checksum": "crc32", "cases": {"name": {"ok": true/false, "detail": "...", ...}}}.
// Exit code 0 when every case passed, 1 otherwise, 2 for bad arguments.
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
    static class Program
    {
        static readonly Dictionary<string, object> Cases = new Dictionary<string, object>();
        static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(90);
        static string url, token, photoPath, outDir, reportPath;

        static int Main(string[] args)
        {
            for (int i = 0; i + 1 < args.Length; i += 2)
            {
                switch (args[i])
                {
                    case "--url": url = args[i + 1]; break;
                    case "--token": token = args[i + 1]; break;
                    case "--photo": photoPath = args[i + 1]; break;
                    case "--out": outDir = args[i + 1]; break;
                    case "--report": reportPath = args[i + 1]; break;
                    default: Console.Error.WriteLine("unknown argument " + args[i]); return 2;
                }
            }
            if (url == null || photoPath == null || outDir == null || reportPath == null)
            {
                Console.Error.WriteLine("usage: harness.exe --url WS_URL [--token T] --photo JPEG --out DIR --report JSON");
                return 2;
            }
            var report = new Dictionary<string, object> { { "cases", Cases } };
            try
            {
                Offline();
                if (!Task.Run(() => Online(report)).Wait(TimeSpan.FromSeconds(240)))
                    Record("harness", false, "the online cases did not finish within 240 s");
            }
            catch (Exception e)
            {
                Record("harness", false, "unexpected exception: " + e);
            }
            File.WriteAllText(reportPath, ChibiJson.Serialize(report));
            bool allOk = Cases.Values.All(c => (bool)((Dictionary<string, object>)c)["ok"]);
            foreach (var pair in Cases)
            {
                var c = (Dictionary<string, object>)pair.Value;
                Console.WriteLine(((bool)c["ok"] ? "ok   " : "FAIL ") + pair.Key + ": " + c["detail"]);
            }
            return allOk ? 0 : 1;
        }

        static Dictionary<string, object> Record(string name, bool ok, string detail, Dictionary<string, object> extra = null)
        {
            var entry = extra ?? new Dictionary<string, object>();
            entry["ok"] = ok;
            entry["detail"] = detail;
            Cases[name] = entry;
            return entry;
        }

        // -- offline: codec and state machine checks -----------------------------------------
        static void Offline()
        {
            Check("json_roundtrip", () =>
            {
                string text = "{\"s\":\"a\\\"b\\\\c\\n\\u00e9\\ud83d\\ude00\",\"n\":-12,\"f\":1.5e3,\"t\":true,\"z\":null,\"a\":[1,[2,{}]]}";
                var parsed = ChibiJson.ParseObject(text);
                Expect((string)parsed["s"] == "a\"b\\c\n\u00e9\U0001F600", "string escapes");
                Expect((long)parsed["n"] == -12 && (double)parsed["f"] == 1500.0, "numbers");
                var again = ChibiJson.ParseObject(ChibiJson.Serialize(parsed));
                Expect(ChibiJson.Serialize(again) == ChibiJson.Serialize(parsed), "serialize/parse round trip");
                foreach (string bad in new[] { "{", "[1,]", "01", "{\"a\" 1}", "\"\\x\"", "tru", "1 2", "\"\u0001\"", new string('[', 100) + new string(']', 100) })
                    Expect(Throws<ChibiJsonException>(() => ChibiJson.Parse(bad)), "refuses " + bad.Substring(0, Math.Min(12, bad.Length)));
                return "escapes, numbers, nesting limit and 9 malformed texts";
            });
            Check("framing_roundtrip", () =>
            {
                var data = new byte[3000];
                new Random(7).NextBytes(data);
                var frames = ChibiFraming.EncodeBlob("r1", "model", data, 1024, 0);
                Expect(frames.Count == 3, "3 chunks of <= 1024 bytes");
                Expect(Encoding.ASCII.GetString(frames[0], 0, 4) == "CHB1", "magic");
                var first = ChibiFraming.DecodeFrame(frames[0], frames[0].Length);
                var assembler = new ChibiBlobAssembler(first.Header, 1 << 20);
                byte[] whole = null;
                foreach (var f in frames) whole = assembler.Add(ChibiFraming.DecodeFrame(f, f.Length));
                Expect(whole != null && whole.SequenceEqual(data), "reassembled blob equals the original");
                // A flipped payload byte -> checksum_mismatch; chunks out of order -> bad_message.
                var tampered = frames.Select(f => (byte[])f.Clone()).ToList();
                tampered[2][tampered[2].Length - 1] ^= 0xff;
                Expect(AssembleCode(tampered) == ChibiErrorCodes.ChecksumMismatch, "tampered payload -> checksum_mismatch");
                Expect(AssembleCode(new List<byte[]> { frames[0], frames[2], frames[1] }) == ChibiErrorCodes.BadMessage, "reordered -> bad_message");
                var badMagic = (byte[])frames[0].Clone();
                badMagic[0] = (byte)'X';
                Expect(CodeOf(() => ChibiFraming.DecodeFrame(badMagic, badMagic.Length)) == ChibiErrorCodes.BadMessage, "bad magic -> bad_message");
                Expect(CodeOf(() => ChibiFraming.DecodeFrame(frames[0], 7)) == ChibiErrorCodes.BadMessage, "short frame -> bad_message");
                var empty = ChibiFraming.EncodeBlob("r2", "photo", new byte[0], 1024);
                Expect(empty.Count == 1 && ChibiFraming.DecodeFrame(empty[0], empty[0].Length).Payload.Length == 0, "empty blob is one empty chunk");
                Expect(ChibiFraming.Sha256Hex(Encoding.ASCII.GetBytes("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "SHA-256('abc')");
                return "encode/decode/reassemble, checksum and order errors";
            });
            Check("session_state_machine", () =>
            {
                var session = new ChibiClientSession();
                session.Hello(1, null, "harness", null);
                var events = session.ReceiveText("{\"type\":\"welcome\",\"version\":1,\"sources\":{\"params\":true,\"photo\":false},\"chunk_bytes\":1024,\"limits\":{}}");
                Expect(events.Count == 1 && events[0].Kind == ChibiEventKind.Welcome && session.State == ChibiSessionState.Open, "welcome opens");
                session.StartParamsRequest("a", null, null);
                session.StartParamsRequest("b", null, null);
                Expect(Throws<ArgumentException>(() => session.StartParamsRequest("a", null, null)), "duplicate id refused locally");
                var model = Encoding.ASCII.GetBytes("glTF-not-really");
                string sha = ChibiFraming.Sha256Hex(model);
                session.ReceiveText("{\"type\":\"result\",\"id\":\"a\",\"item\":0,\"items\":1,\"format\":\"glb\",\"model\":{\"size\":" + model.Length + ",\"sha256\":\"" + sha + "\",\"chunks\":1}}");
                var frame = ChibiFraming.EncodeBlob("a", "model", model, 1024, 0)[0];
                Expect(session.ReceiveBinary(frame, frame.Length).Count == 0, "chunk accepted");
                var error = session.ReceiveText("{\"type\":\"error\",\"id\":\"b\",\"code\":\"busy\",\"message\":\"full\",\"fatal\":false}");
                Expect(error.Count == 1 && error[0].Kind == ChibiEventKind.Failed && error[0].Error.Code == "busy", "error ends b");
                var done = session.ReceiveText("{\"type\":\"done\",\"id\":\"a\",\"items\":1}");
                Expect(done.Count == 1 && done[0].Kind == ChibiEventKind.Completed && done[0].Results[0].Model.SequenceEqual(model), "done delivers a");
                session.StartParamsRequest("c", null, null);
                var early = session.ReceiveText("{\"type\":\"done\",\"id\":\"c\",\"items\":1}");
                Expect(early.Count == 1 && early[0].Kind == ChibiEventKind.Failed && early[0].Error.Code == "bad_message", "done without result -> bad_message");
                session.StartParamsRequest("d", null, null);
                var fatal = session.ReceiveText("{\"type\":\"error\",\"id\":null,\"code\":\"timeout\",\"message\":\"x\",\"fatal\":true}");
                Expect(fatal.Any(e => e.Kind == ChibiEventKind.Failed && e.RequestId == "d") && session.State == ChibiSessionState.Closed, "fatal error fails all and closes");
                return "welcome, interleaved requests, errors, early done, fatal";
            });
            Check("crc32", () =>
            {
                Expect(ChibiCrc32.Compute(Encoding.ASCII.GetBytes("123456789")) == 0xCBF43926u, "CRC-32('123456789') = cbf43926");
                Expect(ChibiCrc32.Hex(Encoding.ASCII.GetBytes("123456789")) == "cbf43926", "hex of the test vector");
                Expect(ChibiCrc32.Hex(new byte[0]) == "00000000", "CRC-32 of nothing");
                Expect(ChibiCrc32.Hex(Encoding.ASCII.GetBytes("chibi373")) == "00c2226e", "zero-padded to 8 digits (zlib.crc32)");
                Expect(ChibiCrc32.Hex(Encoding.ASCII.GetBytes("The quick brown fox jumps over the lazy dog")) == "414fa339", "pangram");
                var data = new byte[3000];
                new Random(11).NextBytes(data);
                var frames = ChibiFraming.EncodeBlob("r1", "model", data, 1024, 0, ChibiChecksums.Crc32);
                var first = ChibiFraming.DecodeFrame(frames[0], frames[0].Length).Header;
                Expect(first.Crc32 == ChibiCrc32.Hex(data) && first.Sha256 == null, "crc32 in place of sha256 in the header");
                var assembler = new ChibiBlobAssembler(first, 1 << 20);
                byte[] whole = null;
                foreach (var f in frames) whole = assembler.Add(ChibiFraming.DecodeFrame(f, f.Length));
                Expect(whole != null && whole.SequenceEqual(data), "reassembled blob equals the original");
                var tampered = frames.Select(f => (byte[])f.Clone()).ToList();
                tampered[1][tampered[1].Length - 1] ^= 0x01;
                Expect(AssembleCode(tampered) == ChibiErrorCodes.ChecksumMismatch, "one flipped bit -> checksum_mismatch");
                foreach (object bad in new object[] { "CBF43926", "cbf4392", "cbf439260", "cbf4392g", 3421780262L })
                {
                    var json = "{\"id\":\"r1\",\"kind\":\"model\",\"index\":0,\"count\":1,\"offset\":0,\"size\":1,\"crc32\":"
                        + ChibiJson.Serialize(bad) + "}";
                    byte[] frame = RawFrame(json, new byte[1]);
                    Expect(CodeOf(() => ChibiFraming.DecodeFrame(frame, frame.Length)) == ChibiErrorCodes.BadMessage, "refuses crc32 " + bad);
                }
                return "CRC-32('123456789') = cbf43926, padding, framing with crc32, mismatch, 5 malformed fields; "
                    + TimeChecksums();
            });
            Check("session_checksum", () =>
            {
                var offered = new ChibiClientSession().Hello(1, null, "harness", null);
                Expect(offered.Contains("\"checksums\":[\"crc32\",\"sha256\"]"), "hello asks crc32 then sha256 by default: " + offered);
                var plain = new ChibiClientSession().Hello(1, null, "harness", null, new[] { ChibiChecksums.Sha256 });
                Expect(!plain.Contains("checksums"), "sha256 only sends the hello of before: " + plain);
                const string welcome = "{\"type\":\"welcome\",\"version\":1,\"sources\":{\"params\":true,\"photo\":true},\"chunk_bytes\":1024,\"limits\":{}";
                var old = new ChibiClientSession();
                old.Hello(1, null, "harness", null);
                old.ReceiveText(welcome + "}");
                Expect(old.State == ChibiSessionState.Open && old.Checksum == ChibiChecksums.Sha256, "no welcome.checksum (older server) -> sha256");
                var unknown = new ChibiClientSession();
                unknown.Hello(1, null, "harness", null);
                var refused = unknown.ReceiveText(welcome + ",\"checksum\":\"md5\"}");
                Expect(refused.Any(e => e.Kind == ChibiEventKind.ConnectionFailed && e.Error.Code == ChibiErrorCodes.BadMessage), "unknown welcome.checksum -> bad_message");

                var session = new ChibiClientSession();
                session.Hello(1, null, "harness", null);
                session.ReceiveText(welcome + ",\"checksum\":\"crc32\"}");
                Expect(session.Checksum == ChibiChecksums.Crc32, "welcome.checksum crc32 read");
                var model = Encoding.ASCII.GetBytes("glTF-not-really");
                string crc = ChibiCrc32.Hex(model);
                // a: announced and sent with crc32 -> delivered.
                session.StartParamsRequest("a", null, null);
                session.ReceiveText(ResultMessage("a", model.Length, "crc32", crc));
                var frame = ChibiFraming.EncodeBlob("a", "model", model, 1024, 0, ChibiChecksums.Crc32)[0];
                Expect(session.ReceiveBinary(frame, frame.Length).Count == 0, "crc32 chunk accepted");
                var done = session.ReceiveText("{\"type\":\"done\",\"id\":\"a\",\"items\":1}");
                Expect(done.Count == 1 && done[0].Kind == ChibiEventKind.Completed && done[0].Results[0].ModelCrc32 == crc
                    && done[0].Results[0].Model.SequenceEqual(model), "done delivers a with its crc32");
                // b: a sha256 result on a crc32 connection would go unchecked by what was agreed.
                session.StartParamsRequest("b", null, null);
                var b = session.ReceiveText(ResultMessage("b", model.Length, "sha256", ChibiFraming.Sha256Hex(model)));
                Expect(b.Count == 1 && b[0].Kind == ChibiEventKind.Failed && b[0].Error.Code == ChibiErrorCodes.BadMessage, "result without crc32 -> bad_message");
                // c: the chunks are not what the crc32 announced.
                session.StartParamsRequest("c", null, null);
                session.ReceiveText(ResultMessage("c", model.Length, "crc32", crc));
                var forged = (byte[])ChibiFraming.EncodeBlob("c", "model", model, 1024, 0, ChibiChecksums.Crc32)[0].Clone();
                forged[forged.Length - 1] ^= 0x20;
                var c = session.ReceiveBinary(forged, forged.Length);
                Expect(c.Count == 1 && c[0].Kind == ChibiEventKind.Failed && c[0].Error.Code == ChibiErrorCodes.ChecksumMismatch, "wrong bytes -> checksum_mismatch");
                // Photo uploads carry the connection's checksum.
                var photo = new byte[2500];
                new Random(3).NextBytes(photo);
                var upload = session.StartPhotoRequest("p", photo, null);
                var header = ChibiFraming.DecodeFrame(upload[1].Binary, upload[1].Binary.Length).Header;
                Expect(upload.Count == 4 && header.Crc32 == ChibiCrc32.Hex(photo) && header.Sha256 == null, "photo chunks carry crc32");
                return "hello offers, old/unknown welcome, crc32 result, result without crc32, mismatch, photo upload";
            });
        }

        static string ResultMessage(string id, int size, string checksum, string digest)
        {
            return "{\"type\":\"result\",\"id\":\"" + id + "\",\"item\":0,\"items\":1,\"format\":\"glb\",\"model\":{\"size\":" + size
                + ",\"" + checksum + "\":\"" + digest + "\",\"chunks\":1}}";
        }

        static byte[] RawFrame(string headerJson, byte[] payload)
        {
            byte[] head = Encoding.UTF8.GetBytes(headerJson);
            var frame = new byte[8 + head.Length + payload.Length];
            Buffer.BlockCopy(ChibiFraming.Magic, 0, frame, 0, 4);
            frame[6] = (byte)(head.Length >> 8);
            frame[7] = (byte)head.Length;
            Buffer.BlockCopy(head, 0, frame, 8, head.Length);
            Buffer.BlockCopy(payload, 0, frame, 8 + head.Length, payload.Length);
            return frame;
        }

        /// <summary>Both checksums of a 660 kB blob (a typical avatar) under this runtime, for the printout only.</summary>
        static string TimeChecksums()
        {
            var blob = new byte[660 * 1000];
            new Random(5).NextBytes(blob);
            ChibiCrc32.Hex(blob);
            ChibiFraming.Sha256Hex(blob); // first calls pay for JIT and table set-up
            const int runs = 20;
            var watch = System.Diagnostics.Stopwatch.StartNew();
            for (int i = 0; i < runs; i++) ChibiCrc32.Hex(blob);
            double crcMs = watch.Elapsed.TotalMilliseconds / runs;
            watch.Restart();
            for (int i = 0; i < runs; i++) ChibiFraming.Sha256Hex(blob);
            double shaMs = watch.Elapsed.TotalMilliseconds / runs;
            return "660 kB: crc32 " + crcMs.ToString("0.00") + " ms, sha256 " + shaMs.ToString("0.00") + " ms (mean of " + runs + ")";
        }

        static string AssembleCode(List<byte[]> frames)
        {
            return CodeOf(() =>
            {
                var first = ChibiFraming.DecodeFrame(frames[0], frames[0].Length);
                var assembler = new ChibiBlobAssembler(first.Header, 1 << 20);
                foreach (var f in frames) assembler.Add(ChibiFraming.DecodeFrame(f, f.Length));
            });
        }

        static string CodeOf(Action action)
        {
            try { action(); return null; }
            catch (ChibiProtocolException e) { return e.Code; }
        }

        static bool Throws<T>(Action action) where T : Exception
        {
            try { action(); return false; }
            catch (T) { return true; }
        }

        static void Expect(bool condition, string what)
        {
            if (!condition) throw new Exception("expected: " + what);
        }

        static void Check(string name, Func<string> body)
        {
            try { Record(name, true, body()); }
            catch (Exception e) { Record(name, false, e.Message); }
        }

        // -- online: against the live server ---------------------------------------------------
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
                RunCase("cancel", () => Cancel(client));
                RunCase("ping", () => Ping(client));
                client.CloseAsync().Wait(TimeSpan.FromSeconds(10));
            }
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
