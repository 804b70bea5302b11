// The chibi websocket protocol, version 1 (server/PROTOCOL.md), client side, without I/O:
// CHB1 binary framing, the JSON control messages, and a client session state machine.
// Feed it whole websocket messages, it returns events; ask it for messages, it returns
// what to send. Any websocket library drives it: websocketpp in the console sample,
// Unreal's IWebSocket in UChibiAvatarComponent.
// Portable C++17; no exceptions (Unreal builds without them): failures are values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "chibi_json.h"

namespace chibi {

constexpr int kProtocolVersion = 1;
constexpr size_t kMaxHeaderBytes = 4096;
constexpr size_t kPrefixBytes = 8;

// Progress stages in the order the server sends them; unknown stages are ignored by index -1.
int stage_index(std::string_view stage);
bool is_valid_id(std::string_view id);

// An error of the protocol: `code` is stable (PROTOCOL.md section 5) or a client code
// ("connection_closed", "connection_refused").
struct Error {
    std::string code;
    std::string message;
    std::string request_id;  // empty: about the connection or a message
    std::string field;       // invalid_params: the offending field
    bool fatal = false;
    std::vector<int> supported;  // unsupported_version: the versions the server speaks
    bool empty() const { return code.empty(); }
    std::string describe() const;
};

// The blob checksum of a connection (hello.checksums, welcome.checksum): every blob, both
// ways, carries this one field. A server that predates the choice sends no welcome.checksum
// and uses sha256.
enum class Checksum { Sha256, Crc32 };
const char* checksum_name(Checksum checksum);  // "sha256", "crc32": also the field's name
// Lowercase hex digest of one buffer: 64 digits for sha256, 8 for crc32.
std::string blob_digest(Checksum checksum, const uint8_t* data, size_t size);

// -- binary framing ---------------------------------------------------------------------
struct ChunkHeader {
    std::string id;
    std::string kind;  // "photo", "model", "preview"
    int64_t index = 0;
    int64_t count = 1;
    int64_t offset = 0;
    int64_t size = 0;
    std::string sha256;  // empty when absent
    std::string crc32;   // empty when absent
    int64_t item = 0;
    bool has_item = false;
    const std::string& digest(Checksum checksum) const { return checksum == Checksum::Crc32 ? crc32 : sha256; }
    std::string& digest(Checksum checksum) { return checksum == Checksum::Crc32 ? crc32 : sha256; }
};

std::vector<uint8_t> encode_frame(const ChunkHeader& header, const uint8_t* payload, size_t size);
// One blob as chunks of at most chunk_bytes payload; every header carries size and the
// whole blob's `checksum`.
std::vector<std::vector<uint8_t>> encode_blob(const std::string& id, const std::string& kind,
                                              const std::vector<uint8_t>& data, size_t chunk_bytes,
                                              Checksum checksum = Checksum::Sha256);
// A binary message -> header and payload view. On failure returns false and sets error
// (code bad_message).
bool decode_frame(const uint8_t* data, size_t size, ChunkHeader& header, const uint8_t*& payload,
                  size_t& payload_size, Error& error);

// Reassembles one blob from its in-order chunks; checks total size and every checksum the
// headers carry (sha256, crc32).
class BlobAssembler {
public:
    // false (and error) when the first chunk is unusable (payload_too_large, bad_message).
    bool start(const ChunkHeader& first, int64_t max_bytes, Error& error);
    // Adds the next chunk. Returns false on an error; sets `complete` after the last chunk.
    bool add(const ChunkHeader& header, const uint8_t* payload, size_t size, bool& complete, Error& error);
    std::vector<uint8_t>& data() { return data_; }

private:
    ChunkHeader first_;
    int64_t next_index_ = 0;
    std::vector<uint8_t> data_;
};

// -- requests and results --------------------------------------------------------------------
struct RequestOptions {
    std::string format = "vrm1";    // glb, vrm1, vrm0
    std::string quality = "default";  // default, high
    bool all_faces = false;
    bool return_params = false;
    bool return_preview = false;
    bool thumbnail = true;  // VRM formats: embed the 1024 px thumbnail; false: about half the time
    Json to_json() const;
};

struct AvatarResult {
    std::string request_id;
    int64_t item = 0;
    int64_t items = 1;
    std::string format;
    std::vector<uint8_t> model;  // verified against the announced size and checksum
    Checksum checksum = Checksum::Sha256;  // the connection's
    std::string model_digest;              // the announced one: hex of `checksum`
    std::vector<uint8_t> preview;  // PNG, when asked for
    Json params;                   // with return_params
    Json timings_ms;
};

struct Progress {
    std::string request_id;
    std::string stage;
    int64_t item = -1;
    double elapsed_ms = 0;
    Json raw;
};

struct Event {
    enum class Kind { Welcome, ConnectionFailed, Accepted, Progress, Completed, Failed, Notice, Pong };
    Kind kind;
    std::string request_id;
    Json welcome;                      // Welcome: the whole message
    Progress progress;                 // Progress
    std::vector<AvatarResult> results;  // Completed
    Error error;                       // Failed / Notice / ConnectionFailed
};

// One websocket message to send.
struct Outgoing {
    bool text = true;
    std::string data;  // text: JSON; binary: the frame bytes
};

class ClientSession {
public:
    enum class State { New, AwaitWelcome, Open, Closed };

    State state() const { return state_; }
    const Json& welcome() const { return welcome_; }
    bool photo_available() const { return welcome_["sources"]["photo"].is_bool() && welcome_["sources"]["photo"].as_bool(); }
    int64_t chunk_bytes() const { return chunk_bytes_; }
    // What welcome.checksum chose (sha256 until the welcome, and from servers before the choice).
    Checksum checksum() const { return checksum_; }
    std::string next_id();  // "c1", "c2", ...

    std::string hello(int version, const std::string& token, const std::string& client, int64_t max_chunk_bytes = 0);
    // Register a request and return its messages; an empty vector (and error) when refused locally.
    std::vector<Outgoing> params_request(const std::string& id, const Json& params, const RequestOptions& options, Error& error);
    std::vector<Outgoing> photo_request(const std::string& id, const std::vector<uint8_t>& photo, const RequestOptions& options, Error& error);
    std::string cancel(const std::string& id) const;
    std::string ping(int64_t nonce) const;

    std::vector<Event> receive_text(std::string_view text);
    std::vector<Event> receive_binary(const uint8_t* data, size_t size);
    // The socket closed or failed: fails every request in flight with the close's code.
    std::vector<Event> connection_closed(int close_code, const std::string& reason, const std::string& detail);

    size_t in_flight() const { return pending_.size(); }
    int64_t max_blob_bytes = int64_t(512) * 1024 * 1024;
    // hello asks for ["crc32", "sha256"]: CRC-32 costs a ninth of this SHA-256 per blob.
    // false asks for sha256 only (no `checksums` field, the hello of earlier clients).
    bool offer_crc32 = true;

private:
    struct Blob {
        int64_t size = -1;
        std::string digest;  // announced by the result message, in the connection's checksum
        bool started = false;
        bool done = false;
        BlobAssembler assembler;
    };
    struct Pending {
        std::map<int64_t, AvatarResult> results;
        std::map<std::string, Blob> blobs;  // key: item ":" kind
    };

    bool register_request(const std::string& id, Error& error);
    bool fits_max_json(const std::string& id, const std::string& text, Error& error) const;
    void on_error(std::vector<Event>& events, const Json& message, const std::string& id);
    void on_result(std::vector<Event>& events, const Json& message, const std::string& id, Pending& request);
    void on_done(std::vector<Event>& events, const Json& message, const std::string& id, Pending& request);
    void fail_locally(std::vector<Event>& events, const std::string& id, Error error);
    void close(std::vector<Event>& events, Error error);

    State state_ = State::New;
    Json welcome_;
    int64_t chunk_bytes_ = 0;
    Checksum checksum_ = Checksum::Sha256;
    int64_t next_id_ = 0;
    std::map<std::string, Pending> pending_;
    std::set<std::string> ended_;
};

// Error from a server `error` message.
Error error_from_message(const Json& message);
// The protocol code a websocket close (code, reason) stands for (section 5, close codes).
std::string code_for_close(int close_code, const std::string& reason);
// "1.0" for VRM 1.0, "0.x" for VRM 0.x, "" for plain glTF, nullopt when not a glb container.
std::optional<std::string> vrm_version_of_glb(const std::vector<uint8_t>& data);

}  // namespace chibi
