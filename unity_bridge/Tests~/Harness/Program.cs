// Console test harness for the Unity bridge's protocol core (Runtime/Protocol/*.cs), run against
// a live `chibi serve`. Unity ignores folders ending in "~", so this never enters a Unity project.
//
//   mcs -langversion:7 -out:harness.exe Runtime/Protocol/*.cs Tests~/Harness/*.cs
//   mono harness.exe --url ws://127.0.0.1:8765/ws --token T --photo face.jpg --out DIR --report report.json
//
// It runs offline codec checks (OfflineChecks.cs), then cases over the wire (OnlineCases.cs), and
// writes one JSON report:
// {"welcome": {...}, "checksum": "crc32", "cases": {"name": {"ok": true/false, "detail": "...", ...}}}.
// Exit code 0 when every case passed, 1 otherwise, 2 for bad arguments.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using ChibiAvatar.Protocol;

namespace ChibiAvatar.Harness
{
    static partial class Program
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
    }
}
