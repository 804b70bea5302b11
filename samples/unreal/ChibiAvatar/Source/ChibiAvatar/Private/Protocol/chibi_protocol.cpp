#include "chibi_protocol.h"

#include <algorithm>
#include <cstring>

#include "chibi_crc32.h"
#include "chibi_sha256.h"

namespace chibi {

namespace {

const char* const kStages[] = {"started", "decoded", "face_found", "params", "built", "exported"};
constexpr int64_t kMaxSafeInteger = int64_t(1) << 53;

Error make_error(std::string code, std::string message, std::string id = "") {
    Error e;
    e.code = std::move(code);
    e.message = std::move(message);
    e.request_id = std::move(id);
    return e;
}

constexpr Checksum kChecksums[] = {Checksum::Sha256, Checksum::Crc32};

size_t digest_digits(Checksum checksum) { return checksum == Checksum::Crc32 ? 8 : 64; }

bool is_digest(Checksum checksum, const std::string& s) {
    if (s.size() != digest_digits(checksum)) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

bool header_int(const Json& json, const char* name, int64_t minimum, int64_t& out) {
    const Json& v = json[name];
    if (!v.is_integer() || v.as_int() < minimum || v.as_int() >= kMaxSafeInteger) return false;
    out = v.as_int();
    return true;
}

uint32_t read_le32(const uint8_t* p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24); }

}  // namespace

int stage_index(std::string_view stage) {
    for (int i = 0; i < 6; ++i)
        if (stage == kStages[i]) return i;
    return -1;
}

bool is_valid_id(std::string_view id) {
    if (id.empty() || id.size() > 64) return false;
    for (char c : id) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok) return false;
    }
    return true;
}

std::string Error::describe() const {
    std::string text = code + ": " + message;
    if (!field.empty()) text += " [field " + field + "]";
    return text;
}

const char* checksum_name(Checksum checksum) { return checksum == Checksum::Crc32 ? "crc32" : "sha256"; }

std::string blob_digest(Checksum checksum, const uint8_t* data, size_t size) {
    return checksum == Checksum::Crc32 ? Crc32::hex(data, size) : Sha256::hex(data, size);
}

// -- framing -------------------------------------------------------------------------------
std::vector<uint8_t> encode_frame(const ChunkHeader& h, const uint8_t* payload, size_t size) {
    Json header = Json::object();
    header.set("id", h.id).set("kind", h.kind).set("index", h.index).set("count", h.count);
    header.set("offset", h.offset).set("size", h.size);
    if (!h.sha256.empty()) header.set("sha256", h.sha256);
    if (!h.crc32.empty()) header.set("crc32", h.crc32);
    if (h.has_item) header.set("item", h.item);
    std::string head = header.dump();
    std::vector<uint8_t> frame(kPrefixBytes + head.size() + size);
    std::memcpy(frame.data(), "CHB1", 4);
    uint32_t length = static_cast<uint32_t>(head.size());
    frame[4] = uint8_t(length >> 24);
    frame[5] = uint8_t(length >> 16);
    frame[6] = uint8_t(length >> 8);
    frame[7] = uint8_t(length);
    std::memcpy(frame.data() + kPrefixBytes, head.data(), head.size());
    if (size > 0) std::memcpy(frame.data() + kPrefixBytes + head.size(), payload, size);
    return frame;
}

std::vector<std::vector<uint8_t>> encode_blob(const std::string& id, const std::string& kind,
                                              const std::vector<uint8_t>& data, size_t chunk_bytes, Checksum checksum) {
    std::vector<std::vector<uint8_t>> frames;
    if (chunk_bytes < 1) chunk_bytes = 1;
    std::string digest = blob_digest(checksum, data.data(), data.size());
    size_t count = std::max<size_t>(1, (data.size() + chunk_bytes - 1) / chunk_bytes);
    for (size_t index = 0; index < count; ++index) {
        size_t offset = index * chunk_bytes;
        size_t length = std::min(chunk_bytes, data.size() - offset);
        ChunkHeader h;
        h.id = id;
        h.kind = kind;
        h.index = int64_t(index);
        h.count = int64_t(count);
        h.offset = int64_t(offset);
        h.size = int64_t(data.size());
        h.digest(checksum) = digest;
        frames.push_back(encode_frame(h, data.data() + offset, length));
    }
    return frames;
}

bool decode_frame(const uint8_t* data, size_t size, ChunkHeader& h, const uint8_t*& payload, size_t& payload_size, Error& error) {
    if (size < kPrefixBytes) {
        error = make_error("bad_message", "binary frame shorter than its 8-byte prefix");
        return false;
    }
    if (std::memcmp(data, "CHB1", 4) != 0) {
        error = make_error("bad_message", "binary frame does not start with CHB1");
        return false;
    }
    size_t length = (size_t(data[4]) << 24) | (size_t(data[5]) << 16) | (size_t(data[6]) << 8) | size_t(data[7]);
    if (length < 2 || length > kMaxHeaderBytes || kPrefixBytes + length > size) {
        error = make_error("bad_message", "bad binary header length " + std::to_string(length));
        return false;
    }
    Json json;
    std::string reason;
    if (!parse_json(std::string_view(reinterpret_cast<const char*>(data + kPrefixBytes), length), json, &reason) || !json.is_object()) {
        error = make_error("bad_message", "binary header is not a JSON object");
        return false;
    }
    h = ChunkHeader();
    h.id = json.get_string("id").value_or("");
    if (!is_valid_id(h.id)) {
        error = make_error("bad_message", "id must be 1-64 characters of [A-Za-z0-9._:-]");
        return false;
    }
    h.kind = json.get_string("kind").value_or("");
    if (h.kind != "photo" && h.kind != "model" && h.kind != "preview") {
        error = make_error("bad_message", "unknown blob kind", h.id);
        return false;
    }
    h.has_item = json.has("item");
    if (!header_int(json, "index", 0, h.index) || !header_int(json, "count", 1, h.count) || !header_int(json, "offset", 0, h.offset) ||
        !header_int(json, "size", 0, h.size) || (h.has_item && !header_int(json, "item", 0, h.item))) {
        error = make_error("bad_message", "header fields index/count/offset/size/item must be integers", h.id);
        return false;
    }
    for (Checksum checksum : kChecksums) {
        const Json& digest = json[checksum_name(checksum)];
        if (digest.is_null()) continue;
        if (!digest.is_string() || !is_digest(checksum, digest.as_string())) {
            error = make_error("bad_message", std::string(checksum_name(checksum)) + " must be " + std::to_string(digest_digits(checksum)) + " lowercase hex digits", h.id);
            return false;
        }
        h.digest(checksum) = digest.as_string();
    }
    payload = data + kPrefixBytes + length;
    payload_size = size - kPrefixBytes - length;
    if (h.index >= h.count || h.offset + int64_t(payload_size) > h.size) {
        error = make_error("bad_message", "chunk index/offset out of range", h.id);
        return false;
    }
    return true;
}

bool BlobAssembler::start(const ChunkHeader& first, int64_t max_bytes, Error& error) {
    if (first.index != 0) {
        error = make_error("bad_message", "the first chunk of a blob must have index 0", first.id);
        return false;
    }
    if (first.size > max_bytes) {
        error = make_error("payload_too_large", first.kind + " of " + std::to_string(first.size) + " bytes is too large", first.id);
        return false;
    }
    if (first.count > std::max<int64_t>(1, first.size)) {
        error = make_error("bad_message", "more chunks than bytes", first.id);
        return false;
    }
    first_ = first;
    next_index_ = 0;
    data_.clear();
    data_.reserve(size_t(first.size));
    return true;
}

bool BlobAssembler::add(const ChunkHeader& h, const uint8_t* payload, size_t size, bool& complete, Error& error) {
    complete = false;
    bool same = h.kind == first_.kind && h.item == first_.item && h.count == first_.count && h.size == first_.size && h.sha256 == first_.sha256 &&
                h.crc32 == first_.crc32;
    if (!same || h.index != next_index_ || h.offset != int64_t(data_.size())) {
        error = make_error("bad_message", "chunk out of order or from another blob", h.id);
        return false;
    }
    data_.insert(data_.end(), payload, payload + size);
    if (++next_index_ < first_.count) return true;
    if (int64_t(data_.size()) != first_.size) {
        error = make_error("bad_message", "blob has " + std::to_string(data_.size()) + " bytes, header said " + std::to_string(first_.size), h.id);
        return false;
    }
    for (Checksum checksum : kChecksums) {
        const std::string& expected = first_.digest(checksum);
        if (!expected.empty() && blob_digest(checksum, data_.data(), data_.size()) != expected) {
            error = make_error("checksum_mismatch", std::string(checksum_name(checksum)) + " of the blob does not match", h.id);
            return false;
        }
    }
    complete = true;
    return true;
}

// -- messages ------------------------------------------------------------------------------
Json RequestOptions::to_json() const {
    Json o = Json::object();
    o.set("format", format).set("quality", quality).set("all_faces", all_faces);
    o.set("return_params", return_params).set("return_preview", return_preview);
    if (!thumbnail) o.set("thumbnail", false);  // only when set: older servers refuse unknown options
    return o;
}

Error error_from_message(const Json& m) {
    Error e = make_error(m.get_string("code").value_or("bad_message"), m.get_string("message").value_or(""), m.get_string("id").value_or(""));
    e.field = m.get_string("field").value_or("");
    e.fatal = m.get_bool("fatal").value_or(false);
    for (const Json& v : m["supported"].as_array())
        if (v.is_integer()) e.supported.push_back(int(v.as_int()));
    return e;
}

std::string code_for_close(int close_code, const std::string& reason) {
    bool code_like = !reason.empty() && reason.size() <= 64 &&
                     std::all_of(reason.begin(), reason.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; });
    if (code_like) return reason;  // the server puts its error code in the close reason
    switch (close_code) {
        case 1001: return "shutting_down";
        case 1007: return "bad_message";
        case 1008: return "unauthorized";
        case 1009: return "frame_too_large";
        case 1011: return "internal_error";
        default: return "connection_closed";
    }
}

std::optional<std::string> vrm_version_of_glb(const std::vector<uint8_t>& d) {
    if (d.size() < 20 || std::memcmp(d.data(), "glTF", 4) != 0 || read_le32(&d[4]) != 2) return std::nullopt;
    uint32_t total = read_le32(&d[8]), json_length = read_le32(&d[12]);
    if (total > d.size() || std::memcmp(&d[16], "JSON", 4) != 0 || 20 + uint64_t(json_length) > total) return std::nullopt;
    Json gltf;
    if (!parse_json(std::string_view(reinterpret_cast<const char*>(&d[20]), json_length), gltf)) return std::nullopt;
    const Json& extensions = gltf["extensions"];
    if (extensions.has("VRMC_vrm")) return std::string("1.0");
    if (extensions.has("VRM")) return std::string("0.x");
    return std::string();
}

// -- session -------------------------------------------------------------------------------
std::string ClientSession::next_id() { return "c" + std::to_string(++next_id_); }

std::string ClientSession::hello(int version, const std::string& token, const std::string& client, int64_t max_chunk_bytes) {
    state_ = State::AwaitWelcome;
    Json m = Json::object();
    m.set("type", "hello").set("version", version);
    if (!token.empty()) m.set("token", token);
    if (!client.empty()) m.set("client", client);
    if (max_chunk_bytes >= 1024) m.set("max_chunk_bytes", max_chunk_bytes);
    if (offer_crc32) m.set("checksums", Json::Array{"crc32", "sha256"});
    return m.dump();
}

bool ClientSession::register_request(const std::string& id, Error& error) {
    if (state_ != State::Open) {
        error = make_error("connection_closed", "the session is not open", id);
        return false;
    }
    if (!is_valid_id(id) || pending_.count(id)) {
        error = make_error("bad_message", "invalid or duplicate request id", id);
        return false;
    }
    ended_.erase(id);
    pending_[id] = Pending();
    return true;
}

std::vector<Outgoing> ClientSession::params_request(const std::string& id, const Json& params, const RequestOptions& options, Error& error) {
    if (!params.is_object()) {
        error = make_error("invalid_params", "params must be a JSON object", id);
        return {};
    }
    Json m = Json::object();
    m.set("type", "request").set("id", id).set("source", "params").set("params", params).set("options", options.to_json());
    std::string text = m.dump();
    if (!fits_max_json(id, text, error) || !register_request(id, error)) return {};
    return {Outgoing{true, std::move(text)}};
}

// The server answers a text message over max_json_bytes frame_too_large without an id (it
// does not read it), so a request sent that way would wait forever: refused here.
bool ClientSession::fits_max_json(const std::string& id, const std::string& text, Error& error) const {
    int64_t limit = welcome_["limits"].get_int("max_json_bytes").value_or(64 * 1024);
    if (int64_t(text.size()) <= limit) return true;
    error = make_error("frame_too_large", "the request is " + std::to_string(text.size()) +
                       " bytes, over the server's max_json_bytes " + std::to_string(limit), id);
    return false;
}

std::vector<Outgoing> ClientSession::photo_request(const std::string& id, const std::vector<uint8_t>& photo, const RequestOptions& options, Error& error) {
    Json m = Json::object();
    m.set("type", "request").set("id", id).set("source", "photo").set("options", options.to_json());
    std::string text = m.dump();
    if (!fits_max_json(id, text, error) || !register_request(id, error)) return {};
    std::vector<Outgoing> out{Outgoing{true, std::move(text)}};
    // Chunks stay under the server's frame limit, header included.
    int64_t frame_limit = welcome_["limits"].get_int("max_frame_bytes").value_or(16 << 20) - int64_t(kPrefixBytes + kMaxHeaderBytes);
    int64_t chunk = std::max<int64_t>(1024, std::min(chunk_bytes_, frame_limit));
    for (auto& frame : encode_blob(id, "photo", photo, size_t(chunk), checksum_)) out.push_back(Outgoing{false, std::string(frame.begin(), frame.end())});
    return out;
}

std::string ClientSession::cancel(const std::string& id) const {
    Json m = Json::object();
    m.set("type", "cancel").set("id", id);
    return m.dump();
}

std::string ClientSession::ping(int64_t nonce) const {
    Json m = Json::object();
    m.set("type", "ping").set("nonce", nonce);
    return m.dump();
}

std::vector<Event> ClientSession::receive_text(std::string_view text) {
    std::vector<Event> events;
    if (state_ == State::Closed) return events;
    Json m;
    std::string reason;
    if (!parse_json(text, m, &reason) || !m.is_object()) {
        Error e = make_error("bad_message", "server sent invalid JSON: " + reason);
        if (state_ == State::AwaitWelcome) close(events, e);
        else events.push_back(Event{Event::Kind::Notice, "", {}, {}, {}, e});
        return events;
    }
    std::string type = m.get_string("type").value_or("");
    if (state_ == State::AwaitWelcome) {
        // No checksum: a server before the choice, which uses sha256. One we did not offer
        // would leave us unable to check its blobs.
        const Json& chosen = m["checksum"];
        bool crc32 = offer_crc32 && chosen.is_string() && chosen.as_string() == "crc32";
        bool checkable = crc32 || chosen.is_null() || (chosen.is_string() && chosen.as_string() == "sha256");
        if (type == "welcome" && m.get_int("chunk_bytes").value_or(0) >= 1 && !checkable) {
            close(events, make_error("bad_message", "welcome chose a checksum this client did not offer: " + chosen.dump()));
        } else if (type == "welcome" && m.get_int("chunk_bytes").value_or(0) >= 1) {
            welcome_ = m;
            chunk_bytes_ = *m.get_int("chunk_bytes");
            checksum_ = crc32 ? Checksum::Crc32 : Checksum::Sha256;
            state_ = State::Open;
            events.push_back(Event{Event::Kind::Welcome, "", m, {}, {}, {}});
        } else if (type == "error") {
            close(events, error_from_message(m));
        } else {
            close(events, make_error("bad_message", "expected welcome, got " + type));
        }
        return events;
    }
    std::string id = m.get_string("id").value_or("");
    auto found = id.empty() ? pending_.end() : pending_.find(id);
    if (type == "error") {
        on_error(events, m, id);
    } else if (type == "pong") {
        Event e{Event::Kind::Pong, "", {}, {}, {}, {}};
        e.progress.raw = m;
        events.push_back(e);
    } else if (found == pending_.end()) {
        // a request that ended (e.g. failed locally), or a message type of a later revision
    } else if (type == "accepted") {
        events.push_back(Event{Event::Kind::Accepted, id, {}, {}, {}, {}});
    } else if (type == "progress") {
        Event e{Event::Kind::Progress, id, {}, {}, {}, {}};
        e.progress.request_id = id;
        e.progress.stage = m.get_string("stage").value_or("");
        e.progress.item = m.get_int("item").value_or(-1);
        e.progress.elapsed_ms = m.get_number("elapsed_ms").value_or(0);
        e.progress.raw = m;
        events.push_back(e);
    } else if (type == "result") {
        on_result(events, m, id, found->second);
    } else if (type == "done") {
        on_done(events, m, id, found->second);
    }
    return events;
}

std::vector<Event> ClientSession::receive_binary(const uint8_t* data, size_t size) {
    std::vector<Event> events;
    if (state_ != State::Open) return events;
    ChunkHeader h;
    const uint8_t* payload = nullptr;
    size_t payload_size = 0;
    Error error;
    if (!decode_frame(data, size, h, payload, payload_size, error)) {
        if (!error.request_id.empty() && pending_.count(error.request_id)) fail_locally(events, error.request_id, error);
        else events.push_back(Event{Event::Kind::Notice, "", {}, {}, {}, error});
        return events;
    }
    auto found = pending_.find(h.id);
    if (found == pending_.end()) return events;  // a request that ended (e.g. cancelled)
    Pending& request = found->second;
    auto blob = request.blobs.find(std::to_string(h.item) + ":" + h.kind);
    if (h.kind == "photo" || blob == request.blobs.end() || blob->second.done) {
        fail_locally(events, h.id, make_error("bad_message", "unexpected " + h.kind + " chunk (no result announced it)", h.id));
        return events;
    }
    Blob& b = blob->second;
    if (h.index == 0 && !b.started) {
        if (h.size != b.size || h.digest(checksum_) != b.digest) {
            fail_locally(events, h.id, make_error("bad_message", "chunk header differs from the result message", h.id));
            return events;
        }
        if (!b.assembler.start(h, max_blob_bytes, error)) {
            fail_locally(events, h.id, error);
            return events;
        }
        b.started = true;
    }
    bool complete = false;
    if (!b.started || !b.assembler.add(h, payload, payload_size, complete, error)) {
        if (error.empty()) error = make_error("bad_message", "the first chunk of a blob must have index 0", h.id);
        fail_locally(events, h.id, error);
        return events;
    }
    if (complete) {
        b.done = true;
        AvatarResult& result = request.results[h.item];
        if (h.kind == "model") result.model = std::move(b.assembler.data());
        else result.preview = std::move(b.assembler.data());
    }
    return events;
}

std::vector<Event> ClientSession::connection_closed(int close_code, const std::string& reason, const std::string& detail) {
    std::vector<Event> events;
    if (state_ == State::Closed) return events;
    Error e = make_error(code_for_close(close_code, reason), "connection closed (" + std::to_string(close_code) + " " + reason + ")" + (detail.empty() ? "" : ": " + detail));
    e.fatal = true;
    close(events, e);
    return events;
}

void ClientSession::on_error(std::vector<Event>& events, const Json& m, const std::string& id) {
    Error e = error_from_message(m);
    if (!id.empty() && pending_.count(id)) {
        pending_.erase(id);
        ended_.insert(id);
        events.push_back(Event{Event::Kind::Failed, id, {}, {}, {}, e});
    } else if (id.empty()) {
        if (e.fatal) close(events, e);
        else events.push_back(Event{Event::Kind::Notice, "", {}, {}, {}, e});
    }
}

void ClientSession::on_result(std::vector<Event>& events, const Json& m, const std::string& id, Pending& request) {
    int64_t item = m.get_int("item").value_or(-1), items = m.get_int("items").value_or(-1);
    const Json& model = m["model"];
    const Json& preview = m["preview"];
    // Without the connection's checksum the blob could not be checked.
    const char* field = checksum_name(checksum_);
    bool checkable = is_digest(checksum_, model.get_string(field).value_or("")) &&
                     (!preview.is_object() || is_digest(checksum_, preview.get_string(field).value_or("")));
    if (item < 0 || items < 1 || item >= items || !model.is_object() || request.results.count(item)) {
        fail_locally(events, id, make_error("bad_message", "malformed or repeated result message", id));
        return;
    }
    if (!checkable) {
        fail_locally(events, id, make_error("bad_message", std::string("result message without a valid ") + field + " (this connection's checksum)", id));
        return;
    }
    AvatarResult& r = request.results[item];
    r.request_id = id;
    r.item = item;
    r.items = items;
    r.format = m.get_string("format").value_or("");
    r.checksum = checksum_;
    r.model_digest = model.get_string(field).value_or("");
    r.params = m["params"];
    r.timings_ms = m["timings_ms"];
    Blob& mb = request.blobs[std::to_string(item) + ":model"];
    mb.size = model.get_int("size").value_or(-1);
    mb.digest = r.model_digest;
    if (preview.is_object()) {
        Blob& pb = request.blobs[std::to_string(item) + ":preview"];
        pb.size = preview.get_int("size").value_or(-1);
        pb.digest = preview.get_string(field).value_or("");
    }
}

void ClientSession::on_done(std::vector<Event>& events, const Json& m, const std::string& id, Pending& request) {
    int64_t items = m.get_int("items").value_or(int64_t(request.results.size()));
    for (const auto& pair : request.blobs)
        if (!pair.second.done) {
            fail_locally(events, id, make_error("bad_message", "done before all result chunks arrived", id));
            return;
        }
    if (items < 1 || int64_t(request.results.size()) != items) {
        fail_locally(events, id, make_error("bad_message", "done announces " + std::to_string(items) + " items, " + std::to_string(request.results.size()) + " arrived", id));
        return;
    }
    Event e{Event::Kind::Completed, id, {}, {}, {}, {}};
    for (auto& pair : request.results) e.results.push_back(std::move(pair.second));
    pending_.erase(id);
    ended_.insert(id);
    events.push_back(std::move(e));
}

void ClientSession::fail_locally(std::vector<Event>& events, const std::string& id, Error error) {
    if (!pending_.erase(id)) return;
    ended_.insert(id);
    error.request_id = id;
    events.push_back(Event{Event::Kind::Failed, id, {}, {}, {}, error});
}

void ClientSession::close(std::vector<Event>& events, Error error) {
    state_ = State::Closed;
    for (auto& pair : pending_) {
        Error e = error;
        e.request_id = pair.first;
        e.fatal = true;
        events.push_back(Event{Event::Kind::Failed, pair.first, {}, {}, {}, e});
        ended_.insert(pair.first);
    }
    pending_.clear();
    events.push_back(Event{Event::Kind::ConnectionFailed, "", {}, {}, {}, error});
}

}  // namespace chibi
