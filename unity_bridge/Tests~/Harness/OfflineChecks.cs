// The harness's offline checks: the protocol core's codecs and state machine, no server.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using ChibiAvatar.Protocol;

namespace ChibiAvatar.Harness
{
    static partial class Program
    {
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
                foreach (string bad in new[] { "{", "[1,]", "01", "{\"a\" 1}", "\"\\x\"", "tru", "1 2", "\"\u0001\"", new string('[', 100) + new string(']', 100), "1e400", "[-1e400]" })
                    Expect(Throws<ChibiJsonException>(() => ChibiJson.Parse(bad)), "refuses " + bad.Substring(0, Math.Min(12, bad.Length)));
                return "escapes, numbers, nesting limit and 11 malformed or unrepresentable texts";
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
                var huge = new Dictionary<string, object> { { "name", new string('x', 70000) } };
                Expect(CodeOf(() => session.StartParamsRequest("h", huge, null)) == ChibiErrorCodes.FrameTooLarge, "over max_json_bytes -> frame_too_large");
                session.StartParamsRequest("h", null, null);  // the refused id was never registered
                session.Abandon("h");
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
    }
}
