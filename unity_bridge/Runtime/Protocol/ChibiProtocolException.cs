// Errors of the chibi protocol as typed exceptions carrying the server's stable code.
using System;
using System.Collections.Generic;

namespace ChibiAvatar.Protocol
{
    /// <summary>The stable error codes of server/PROTOCOL.md section 5, plus the client's own.</summary>
    public static class ChibiErrorCodes
    {
        public const string BadMessage = "bad_message";
        public const string InvalidJson = "invalid_json";
        public const string UnknownType = "unknown_type";
        public const string WrongState = "wrong_state";
        public const string UnsupportedVersion = "unsupported_version";
        public const string Unauthorized = "unauthorized";
        public const string FrameTooLarge = "frame_too_large";
        public const string DuplicateId = "duplicate_id";
        public const string UnknownId = "unknown_id";
        public const string InvalidOption = "invalid_option";
        public const string InvalidParams = "invalid_params";
        public const string PayloadTooLarge = "payload_too_large";
        public const string ChecksumMismatch = "checksum_mismatch";
        public const string Busy = "busy";
        public const string RateLimited = "rate_limited";
        public const string Timeout = "timeout";
        public const string IdleTimeout = "idle_timeout";
        public const string Cancelled = "cancelled";
        public const string ShuttingDown = "shutting_down";
        public const string NotAvailable = "not_available";
        public const string InternalError = "internal_error";
        public const string InvalidImage = "invalid_image";
        public const string ImageTooLarge = "image_too_large";
        public const string NoFace = "no_face";
        public const string FaceTooSmall = "face_too_small";
        public const string FaceTooRotated = "face_too_rotated";

        // Client-side codes (never sent by the server).
        /// <summary>The connection closed (or could not open) without a more precise code.</summary>
        public const string ConnectionClosed = "connection_closed";
        /// <summary>The HTTP upgrade was refused (403 Origin, 404 path, 503 full / shutting down).</summary>
        public const string ConnectionRefused = "connection_refused";

        /// <summary>Codes worth retrying later, possibly elsewhere (section 5 "what the client should do").</summary>
        public static bool IsRetryable(string code)
        {
            return code == Busy || code == RateLimited || code == Timeout || code == ShuttingDown
                || code == InternalError || code == ChecksumMismatch || code == ConnectionClosed;
        }
    }

    /// <summary>
    /// A request or the connection failed. <see cref="Code"/> is stable and machine-readable
    /// (see <see cref="ChibiErrorCodes"/>); treat an unknown code as a generic failure.
    /// </summary>
    public class ChibiProtocolException : Exception
    {
        public string Code { get; }
        /// <summary>The request that ended, or null when the error concerns the connection or a message.</summary>
        public string RequestId { get; }
        /// <summary>With invalid_params: the offending params field, e.g. "shape.eye_size".</summary>
        public string Field { get; }
        /// <summary>True when the server closes the connection after this error.</summary>
        public bool Fatal { get; }
        /// <summary>With unsupported_version: the versions the server speaks.</summary>
        public IList<int> SupportedVersions { get; }
        /// <summary>For non-terminal errors about a message: the request id that message named.</summary>
        public string Ref { get; }
        /// <summary>The human-readable message without the code prefix.</summary>
        public string Detail { get; }

        public ChibiProtocolException(string code, string message, string requestId = null, string field = null,
            bool fatal = false, IList<int> supportedVersions = null, string reference = null, Exception inner = null)
            : base(code + ": " + message, inner)
        {
            Code = code;
            Detail = message;
            RequestId = requestId;
            Field = field;
            Fatal = fatal;
            SupportedVersions = supportedVersions ?? new int[0];
            Ref = reference;
        }

        /// <summary>The exception an `error` message from the server describes.</summary>
        public static ChibiProtocolException FromErrorMessage(IDictionary<string, object> message)
        {
            var supported = new List<int>();
            var list = ChibiJson.GetArray(message, "supported");
            if (list != null)
                foreach (object v in list)
                    if (v is long l) supported.Add((int)l);
            return new ChibiProtocolException(
                ChibiJson.GetString(message, "code") ?? ChibiErrorCodes.BadMessage,
                ChibiJson.GetString(message, "message") ?? "",
                ChibiJson.GetString(message, "id"),
                ChibiJson.GetString(message, "field"),
                ChibiJson.GetBool(message, "fatal") ?? false,
                supported,
                ChibiJson.GetString(message, "ref"));
        }

        /// <summary>
        /// The protocol code a websocket close (status, reason) stands for: the server puts its
        /// error code in the close reason after a fatal error (section 5, close codes).
        /// </summary>
        public static string CodeForClose(int? status, string reason)
        {
            if (!string.IsNullOrEmpty(reason) && IsCodeLike(reason)) return reason;
            switch (status ?? 0)
            {
                case 1001: return ChibiErrorCodes.ShuttingDown;
                case 1007: return ChibiErrorCodes.BadMessage;
                case 1008: return ChibiErrorCodes.Unauthorized;
                case 1009: return ChibiErrorCodes.FrameTooLarge;
                case 1011: return ChibiErrorCodes.InternalError;
                default: return ChibiErrorCodes.ConnectionClosed;
            }
        }

        static bool IsCodeLike(string text)
        {
            if (text.Length > 64) return false;
            foreach (char c in text)
                if (!((c >= 'a' && c <= 'z') || c == '_')) return false;
            return true;
        }
    }
}
