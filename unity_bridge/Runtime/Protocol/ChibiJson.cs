// A small, strict JSON reader/writer for the protocol's control messages.
// Unity has no System.Text.Json and JsonUtility cannot read free-form objects,
// so the protocol core carries its own. Plain C# 7, no UnityEngine.
//
// Mapping: object -> Dictionary<string, object> (insertion order kept on write),
// array -> List<object>, string -> string, integer -> long, other numbers -> double,
// true/false -> bool, null -> null.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace ChibiAvatar.Protocol
{
    /// <summary>Thrown by <see cref="ChibiJson.Parse"/> for text that is not valid JSON.</summary>
    public sealed class ChibiJsonException : FormatException
    {
        public ChibiJsonException(string message) : base(message) { }
    }

    public static class ChibiJson
    {
        /// <summary>Nesting deeper than this is refused (no stack overflow on hostile input).</summary>
        public const int MaxDepth = 64;

        /// <summary>Parses one JSON value; the whole text must be that value plus whitespace.</summary>
        public static object Parse(string text)
        {
            if (text == null) throw new ArgumentNullException(nameof(text));
            var reader = new Reader(text);
            reader.SkipWhitespace();
            object value = reader.ReadValue(0);
            reader.SkipWhitespace();
            if (reader.Position != text.Length) throw reader.Error("trailing characters after the value");
            return value;
        }

        /// <summary>Parses text that must hold a JSON object.</summary>
        public static Dictionary<string, object> ParseObject(string text)
        {
            var value = Parse(text) as Dictionary<string, object>;
            if (value == null) throw new ChibiJsonException("expected a JSON object");
            return value;
        }

        /// <summary>Compact JSON text for a value built from the types listed at the top of this file.</summary>
        public static string Serialize(object value)
        {
            var builder = new StringBuilder(128);
            Write(builder, value, 0);
            return builder.ToString();
        }

        // -- typed access to parsed objects (null when missing or of another type) --
        public static string GetString(IDictionary<string, object> obj, string key)
        {
            object value;
            return obj != null && obj.TryGetValue(key, out value) ? value as string : null;
        }

        public static long? GetLong(IDictionary<string, object> obj, string key)
        {
            object value;
            if (obj == null || !obj.TryGetValue(key, out value)) return null;
            if (value is long l) return l;
            if (value is double d && Math.Floor(d) == d && Math.Abs(d) < 9007199254740992.0) return (long)d;
            return null;
        }

        public static double? GetDouble(IDictionary<string, object> obj, string key)
        {
            object value;
            if (obj == null || !obj.TryGetValue(key, out value)) return null;
            if (value is long l) return l;
            if (value is double d) return d;
            return null;
        }

        public static bool? GetBool(IDictionary<string, object> obj, string key)
        {
            object value;
            return obj != null && obj.TryGetValue(key, out value) && value is bool b ? (bool?)b : null;
        }

        public static Dictionary<string, object> GetObject(IDictionary<string, object> obj, string key)
        {
            object value;
            return obj != null && obj.TryGetValue(key, out value) ? value as Dictionary<string, object> : null;
        }

        public static List<object> GetArray(IDictionary<string, object> obj, string key)
        {
            object value;
            return obj != null && obj.TryGetValue(key, out value) ? value as List<object> : null;
        }

        // -- writer ------------------------------------------------------------------------
        static void Write(StringBuilder builder, object value, int depth)
        {
            if (depth > MaxDepth) throw new ArgumentException("JSON value nested too deeply");
            if (value == null) { builder.Append("null"); return; }
            if (value is string s) { WriteString(builder, s); return; }
            if (value is bool b) { builder.Append(b ? "true" : "false"); return; }
            if (value is int || value is long || value is short || value is byte || value is uint || value is sbyte || value is ushort)
            {
                builder.Append(Convert.ToInt64(value, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture));
                return;
            }
            if (value is ulong ul) { builder.Append(ul.ToString(CultureInfo.InvariantCulture)); return; }
            if (value is double || value is float || value is decimal)
            {
                double d = Convert.ToDouble(value, CultureInfo.InvariantCulture);
                if (double.IsNaN(d) || double.IsInfinity(d)) throw new ArgumentException("JSON has no NaN or Infinity");
                // "R" round-trips; JSON needs no exponent sign quirks fixed ("1E+20" is valid JSON).
                builder.Append(d.ToString("R", CultureInfo.InvariantCulture));
                return;
            }
            if (value is IDictionary<string, object> dict)
            {
                builder.Append('{');
                bool first = true;
                foreach (var pair in dict)
                {
                    if (!first) builder.Append(',');
                    first = false;
                    WriteString(builder, pair.Key);
                    builder.Append(':');
                    Write(builder, pair.Value, depth + 1);
                }
                builder.Append('}');
                return;
            }
            if (value is IEnumerable list)
            {
                builder.Append('[');
                bool first = true;
                foreach (object item in list)
                {
                    if (!first) builder.Append(',');
                    first = false;
                    Write(builder, item, depth + 1);
                }
                builder.Append(']');
                return;
            }
            throw new ArgumentException("cannot write a " + value.GetType().Name + " as JSON");
        }

        static void WriteString(StringBuilder builder, string s)
        {
            builder.Append('"');
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': builder.Append("\\\""); break;
                    case '\\': builder.Append("\\\\"); break;
                    case '\n': builder.Append("\\n"); break;
                    case '\r': builder.Append("\\r"); break;
                    case '\t': builder.Append("\\t"); break;
                    case '\b': builder.Append("\\b"); break;
                    case '\f': builder.Append("\\f"); break;
                    default:
                        if (c < 0x20) builder.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        else builder.Append(c);
                        break;
                }
            }
            builder.Append('"');
        }

        // -- reader ------------------------------------------------------------------------
        sealed class Reader
        {
            readonly string text;
            public int Position;

            public Reader(string text) { this.text = text; }

            public ChibiJsonException Error(string what)
            {
                return new ChibiJsonException(what + " at character " + Position);
            }

            public void SkipWhitespace()
            {
                while (Position < text.Length)
                {
                    char c = text[Position];
                    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
                    Position++;
                }
            }

            public object ReadValue(int depth)
            {
                if (depth > MaxDepth) throw Error("nested too deeply");
                if (Position >= text.Length) throw Error("unexpected end of text");
                char c = text[Position];
                switch (c)
                {
                    case '{': return ReadObject(depth);
                    case '[': return ReadArray(depth);
                    case '"': return ReadString();
                    case 't': Expect("true"); return true;
                    case 'f': Expect("false"); return false;
                    case 'n': Expect("null"); return null;
                    default:
                        if (c == '-' || (c >= '0' && c <= '9')) return ReadNumber();
                        throw Error("unexpected character '" + c + "'");
                }
            }

            void Expect(string word)
            {
                if (string.CompareOrdinal(text, Position, word, 0, word.Length) != 0) throw Error("invalid literal");
                Position += word.Length;
            }

            Dictionary<string, object> ReadObject(int depth)
            {
                var result = new Dictionary<string, object>();
                Position++; // '{'
                SkipWhitespace();
                if (Position < text.Length && text[Position] == '}') { Position++; return result; }
                while (true)
                {
                    SkipWhitespace();
                    if (Position >= text.Length || text[Position] != '"') throw Error("expected a string key");
                    string key = ReadString();
                    SkipWhitespace();
                    if (Position >= text.Length || text[Position] != ':') throw Error("expected ':'");
                    Position++;
                    SkipWhitespace();
                    result[key] = ReadValue(depth + 1); // like Python's json: the last duplicate wins
                    SkipWhitespace();
                    if (Position >= text.Length) throw Error("unterminated object");
                    char c = text[Position++];
                    if (c == '}') return result;
                    if (c != ',') throw Error("expected ',' or '}'");
                }
            }

            List<object> ReadArray(int depth)
            {
                var result = new List<object>();
                Position++; // '['
                SkipWhitespace();
                if (Position < text.Length && text[Position] == ']') { Position++; return result; }
                while (true)
                {
                    SkipWhitespace();
                    result.Add(ReadValue(depth + 1));
                    SkipWhitespace();
                    if (Position >= text.Length) throw Error("unterminated array");
                    char c = text[Position++];
                    if (c == ']') return result;
                    if (c != ',') throw Error("expected ',' or ']'");
                }
            }

            string ReadString()
            {
                Position++; // opening quote
                var builder = new StringBuilder();
                while (true)
                {
                    if (Position >= text.Length) throw Error("unterminated string");
                    char c = text[Position++];
                    if (c == '"') return builder.ToString();
                    if (c < 0x20) throw Error("control character in string");
                    if (c != '\\') { builder.Append(c); continue; }
                    if (Position >= text.Length) throw Error("unterminated escape");
                    char e = text[Position++];
                    switch (e)
                    {
                        case '"': builder.Append('"'); break;
                        case '\\': builder.Append('\\'); break;
                        case '/': builder.Append('/'); break;
                        case 'b': builder.Append('\b'); break;
                        case 'f': builder.Append('\f'); break;
                        case 'n': builder.Append('\n'); break;
                        case 'r': builder.Append('\r'); break;
                        case 't': builder.Append('\t'); break;
                        case 'u': builder.Append(ReadHex4()); break; // surrogate pairs arrive as two escapes
                        default: throw Error("invalid escape '\\" + e + "'");
                    }
                }
            }

            char ReadHex4()
            {
                if (Position + 4 > text.Length) throw Error("short \\u escape");
                int code = 0;
                for (int i = 0; i < 4; i++)
                {
                    char h = text[Position++];
                    int digit = h >= '0' && h <= '9' ? h - '0'
                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                        : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                    if (digit < 0) throw Error("invalid \\u escape");
                    code = code * 16 + digit;
                }
                return (char)code;
            }

            object ReadNumber()
            {
                int start = Position;
                if (text[Position] == '-') Position++;
                if (Position >= text.Length) throw Error("invalid number");
                if (text[Position] == '0') Position++;
                else if (text[Position] >= '1' && text[Position] <= '9') SkipDigits();
                else throw Error("invalid number");
                bool integer = true;
                if (Position < text.Length && text[Position] == '.')
                {
                    integer = false;
                    Position++;
                    if (!IsDigitAt(Position)) throw Error("digit expected after '.'");
                    SkipDigits();
                }
                if (Position < text.Length && (text[Position] == 'e' || text[Position] == 'E'))
                {
                    integer = false;
                    Position++;
                    if (Position < text.Length && (text[Position] == '+' || text[Position] == '-')) Position++;
                    if (!IsDigitAt(Position)) throw Error("digit expected in exponent");
                    SkipDigits();
                }
                string token = text.Substring(start, Position - start);
                long asLong;
                if (integer && long.TryParse(token, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out asLong))
                    return asLong;
                double asDouble;
                // TryParse: Mono and .NET Framework throw OverflowException for 1e400
                if (!double.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out asDouble)
                    || double.IsInfinity(asDouble))
                    throw Error("number out of range");
                return asDouble;
            }

            bool IsDigitAt(int index)
            {
                return index < text.Length && text[index] >= '0' && text[index] <= '9';
            }

            void SkipDigits()
            {
                while (IsDigitAt(Position)) Position++;
            }
        }
    }
}
