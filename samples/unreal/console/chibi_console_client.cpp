// Console client for the chibi websocket service: the same protocol core the Unreal plugin
// uses (ChibiAvatar/Source/ChibiAvatar/Private/Protocol), driven by websocketpp + standalone
// asio (Debian: libwebsocketpp-dev, libasio-dev; both header-only).
//
//   P=../ChibiAvatar/Source/ChibiAvatar/Private/Protocol
//   g++ -std=c++17 -O1 -I$P chibi_console_client.cpp $P/*.cpp -o chibi_console_client -pthread
//   ./chibi_console_client --url ws://127.0.0.1:8765/ws --params '{"hair_style":"bob"}' --format glb --out bob.glb
//   ./chibi_console_client --url ws://HOST:8765/ws --token T --photo me.jpg --out me.vrm
//
// Progress goes to stderr; the last line on stdout is a JSON summary:
// {"ok":true,"format":"glb","bytes":...,"checksum":"crc32","announced":"...","sha256":"...","crc32":"...",
//  "stages":[...],"vrm":""}
// or {"ok":false,"code":"invalid_params","message":"...","field":"hair_style",...}.
// Exit status: 0 avatar received, 1 protocol error, 2 usage or local error.
#define ASIO_STANDALONE
#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_no_tls_client.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "chibi_crc32.h"
#include "chibi_json.h"
#include "chibi_protocol.h"
#include "chibi_sha256.h"

namespace {

using WsClient = websocketpp::client<websocketpp::config::asio_client>;

struct Options {
    std::string url, token, params, photo, out, preview, cancel_at;
    chibi::RequestOptions request;
    bool token_in_hello = false;
    bool sha256_only = false;  // hello asks for sha256 only instead of ["crc32", "sha256"]
    int version = chibi::kProtocolVersion;
    int timeout_s = 120;
    int64_t max_chunk_bytes = 0;  // 0: the server's setting
};

bool read_file(const std::string& path, std::vector<uint8_t>& data) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return true;
}

bool write_file(const std::string& path, const std::vector<uint8_t>& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
    return bool(out);
}

// One connection, one request: hello -> welcome -> request (+ photo chunks) -> events -> close.
class Conversation {
public:
    explicit Conversation(const Options& options) : options_(options) {
        ws_.clear_access_channels(websocketpp::log::alevel::all);
        ws_.clear_error_channels(websocketpp::log::elevel::all);
        ws_.init_asio();
        ws_.set_max_message_size(256 * 1024 * 1024);
        ws_.set_open_handler([this](websocketpp::connection_hdl hdl) { on_open(hdl); });
        ws_.set_message_handler([this](websocketpp::connection_hdl, WsClient::message_ptr message) { on_message(message); });
        ws_.set_fail_handler([this](websocketpp::connection_hdl hdl) { on_fail(hdl); });
        ws_.set_close_handler([this](websocketpp::connection_hdl hdl) { on_close(hdl); });
        session_.offer_crc32 = !options.sha256_only;
    }

    // Runs to the end; fills result_ or error_.
    void run() {
        websocketpp::lib::error_code ec;
        auto connection = ws_.get_connection(options_.url, ec);
        if (ec) {
            finish_error(make("connection_refused", "bad URL " + options_.url + ": " + ec.message()));
            return;
        }
        if (!options_.token.empty() && !options_.token_in_hello) connection->append_header("Authorization", "Bearer " + options_.token);
        ws_.connect(connection);
        timer_ = ws_.set_timer(long(options_.timeout_s) * 1000, [this](const websocketpp::lib::error_code& timer_ec) {
            if (timer_ec || done_) return;
            finish_error(make("timeout", "no answer within " + std::to_string(options_.timeout_s) + " s"));
            ws_.stop();
        });
        ws_.run();
    }

    bool succeeded() const { return done_ && error_.empty(); }
    const chibi::Error& error() const { return error_; }
    const chibi::AvatarResult& result() const { return result_; }
    const std::vector<std::string>& stages() const { return stages_; }
    int64_t binary_messages() const { return binary_messages_; }
    const chibi::ClientSession& session() const { return session_; }

private:
    static chibi::Error make(const std::string& code, const std::string& message) {
        chibi::Error e;
        e.code = code;
        e.message = message;
        e.fatal = true;
        return e;
    }

    void send(const chibi::Outgoing& message) {
        websocketpp::lib::error_code ec;
        auto opcode = message.text ? websocketpp::frame::opcode::text : websocketpp::frame::opcode::binary;
        ws_.send(hdl_, message.data.data(), message.data.size(), opcode, ec);
        if (ec) finish_error(make("connection_closed", "send failed: " + ec.message()));
    }

    void on_open(websocketpp::connection_hdl hdl) {
        hdl_ = hdl;
        std::string token = options_.token_in_hello ? options_.token : "";
        send(chibi::Outgoing{true, session_.hello(options_.version, token, "chibi-console-cpp/0.1.0", options_.max_chunk_bytes)});
    }

    void on_message(WsClient::message_ptr message) {
        const std::string& payload = message->get_payload();
        if (message->get_opcode() != websocketpp::frame::opcode::text) ++binary_messages_;
        std::vector<chibi::Event> events = message->get_opcode() == websocketpp::frame::opcode::text
            ? session_.receive_text(payload)
            : session_.receive_binary(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
        for (auto& event : events) handle(event);
    }

    void handle(chibi::Event& event) {
        using Kind = chibi::Event::Kind;
        switch (event.kind) {
            case Kind::Welcome:
                std::cerr << "welcome checksum " << chibi::checksum_name(session_.checksum()) << "\n";
                start_request();
                break;
            case Kind::Accepted: std::cerr << "accepted " << event.request_id << "\n"; break;
            case Kind::Progress:
                std::cerr << "progress " << event.progress.stage << " " << event.progress.elapsed_ms << " ms\n";
                stages_.push_back(event.progress.stage);
                if (event.progress.stage == options_.cancel_at) send(chibi::Outgoing{true, session_.cancel(request_id_)});
                break;
            case Kind::Completed:
                result_ = std::move(event.results.front());
                finish_ok();
                break;
            case Kind::Failed:
            case Kind::ConnectionFailed: finish_error(event.error); break;
            case Kind::Notice: std::cerr << "notice " << event.error.describe() << "\n"; break;
            case Kind::Pong: break;
        }
    }

    void start_request() {
        request_id_ = session_.next_id();
        chibi::Error error;
        std::vector<chibi::Outgoing> messages;
        if (!options_.photo.empty()) {
            std::vector<uint8_t> photo;  // stays in memory; never written anywhere
            if (!read_file(options_.photo, photo)) return finish_error(make("usage", "cannot read " + options_.photo));
            messages = session_.photo_request(request_id_, photo, options_.request, error);
        } else {
            chibi::Json params;
            std::string reason;
            if (!chibi::parse_json(options_.params.empty() ? "{}" : options_.params, params, &reason))
                return finish_error(make("usage", "--params is not JSON: " + reason));
            messages = session_.params_request(request_id_, params, options_.request, error);
        }
        if (!error.empty()) return finish_error(error);
        for (const auto& message : messages) send(message);
    }

    void finish_ok() {
        done_ = true;
        close();
    }

    void finish_error(const chibi::Error& error) {
        if (done_) return;
        done_ = true;
        error_ = error;
        close();
    }

    void close() {
        websocketpp::lib::error_code ec;
        if (auto connection = ws_.get_con_from_hdl(hdl_, ec))
            if (connection->get_state() == websocketpp::session::state::open) ws_.close(hdl_, websocketpp::close::status::normal, "", ec);
    }

    void stop_timer() {
        if (timer_) timer_->cancel();  // else the pending timer keeps run() going
    }

    void on_fail(websocketpp::connection_hdl hdl) {
        stop_timer();
        auto connection = ws_.get_con_from_hdl(hdl);
        int status = int(connection->get_response_code());  // the HTTP answer to the upgrade, 0 if none
        std::string code = status == 401 ? "unauthorized" : (status == 403 || status == 404 || status == 503) ? "connection_refused" : "connection_closed";
        finish_error(make(code, "could not open " + options_.url + " (HTTP " + std::to_string(status) + "): " + connection->get_ec().message()));
    }

    void on_close(websocketpp::connection_hdl hdl) {
        stop_timer();
        auto connection = ws_.get_con_from_hdl(hdl);
        for (auto& event : session_.connection_closed(connection->get_remote_close_code(), connection->get_remote_close_reason(), ""))
            if (event.kind == chibi::Event::Kind::Failed || event.kind == chibi::Event::Kind::ConnectionFailed) finish_error(event.error);
        if (!done_) finish_error(make("connection_closed", "closed before an answer"));
    }

    Options options_;
    WsClient ws_;
    WsClient::timer_ptr timer_;
    websocketpp::connection_hdl hdl_;
    chibi::ClientSession session_;
    std::string request_id_;
    std::vector<std::string> stages_;
    chibi::AvatarResult result_;
    chibi::Error error_;
    bool done_ = false;
    int64_t binary_messages_ = 0;
};

// Offline checks of the protocol core: JSON, framing, SHA-256, CRC-32, the session.
int self_test() {
    int failures = 0;
    auto expect = [&failures](bool ok, const char* what) {
        if (!ok) {
            std::cerr << "FAIL " << what << "\n";
            ++failures;
        }
    };
    chibi::Json json;
    expect(chibi::parse_json("{\"s\":\"a\\\"b\\u00e9\\ud83d\\ude00\",\"n\":-12,\"f\":1.5e3,\"a\":[true,null,{}]}", json), "parse JSON");
    expect(json.get_string("s").value_or("") == "a\"b\xc3\xa9\xf0\x9f\x98\x80", "string escapes and surrogate pair");
    expect(json.get_int("n").value_or(0) == -12 && json.get_number("f").value_or(0) == 1500.0, "numbers");
    chibi::Json again;
    expect(chibi::parse_json(json.dump(), again) && again.dump() == json.dump(), "dump/parse round trip");
    for (const char* bad : {"{", "[1,]", "01", "{\"a\" 1}", "\"\\x\"", "tru", "1 2"}) expect(!chibi::parse_json(bad, again), bad);
    expect(!chibi::parse_json(std::string(100, '[') + std::string(100, ']'), again), "nesting limit");
    std::string abc = "abc";
    expect(chibi::Sha256::hex(reinterpret_cast<const uint8_t*>(abc.data()), 3) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "sha256(abc)");
    std::string digits = "123456789";
    expect(chibi::Crc32::hex(reinterpret_cast<const uint8_t*>(digits.data()), 9) == "cbf43926", "crc32(123456789)");
    expect(chibi::Crc32::hex(nullptr, 0) == "00000000", "crc32 of nothing, zero-padded");
    std::vector<uint8_t> blob(3000);
    std::mt19937 random(7);
    for (auto& b : blob) b = uint8_t(random());
    chibi::Crc32 whole, pieces;  // pieces of 1 to 17 bytes: the 8-byte loop starts at every offset
    whole.update(blob.data(), blob.size());
    for (size_t at = 0, step = 1; at < blob.size(); at += step, step = step % 17 + 1) pieces.update(&blob[at], std::min(step, blob.size() - at));
    expect(pieces.value() == whole.value(), "crc32 updated in pieces");
    auto frames = chibi::encode_blob("r1", "model", blob, 1024);
    expect(frames.size() == 3, "three chunks");
    auto assemble = [](const std::vector<std::vector<uint8_t>>& parts, std::string& code) {
        chibi::BlobAssembler assembler;
        chibi::Error error;
        bool complete = false;
        for (size_t i = 0; i < parts.size(); ++i) {
            chibi::ChunkHeader h;
            const uint8_t* payload;
            size_t size;
            if (!chibi::decode_frame(parts[i].data(), parts[i].size(), h, payload, size, error) || (i == 0 && !assembler.start(h, 1 << 20, error)) ||
                !assembler.add(h, payload, size, complete, error)) {
                code = error.code;
                return std::vector<uint8_t>();
            }
        }
        return complete ? assembler.data() : std::vector<uint8_t>();
    };
    std::string code;
    expect(assemble(frames, code) == blob, "reassembled blob equals the original");
    auto tampered = frames;
    tampered[2].back() ^= 0xff;
    assemble(tampered, code);
    expect(code == "checksum_mismatch", "tampered payload -> checksum_mismatch");
    assemble({frames[0], frames[2], frames[1]}, code);
    expect(code == "bad_message", "reordered -> bad_message");
    auto crc_frames = chibi::encode_blob("r1", "model", blob, 1024, chibi::Checksum::Crc32);
    chibi::ChunkHeader crc_header;
    const uint8_t* crc_payload;
    size_t crc_size;
    chibi::Error crc_error;
    expect(chibi::decode_frame(crc_frames[1].data(), crc_frames[1].size(), crc_header, crc_payload, crc_size, crc_error) &&
               crc_header.crc32 == chibi::Crc32::hex(blob.data(), blob.size()) && crc_header.sha256.empty(),
           "crc32 chunk headers carry the blob's crc32 and no sha256");
    expect(assemble(crc_frames, code) == blob, "crc32 blob reassembled");
    tampered = crc_frames;
    tampered[1][tampered[1].size() - 10] ^= 0x01;
    assemble(tampered, code);
    expect(code == "checksum_mismatch", "tampered crc32 blob -> checksum_mismatch");
    // A header with a malformed crc32 (upper case, short, a number) is refused like a bad sha256.
    for (const char* bad : {"\"CBF43926\"", "\"cbf4392\"", "\"cbf439260\"", "3421780262"}) {
        chibi::Json header;
        chibi::parse_json(std::string("{\"id\":\"r1\",\"kind\":\"model\",\"index\":0,\"count\":1,\"offset\":0,\"size\":1,\"crc32\":") + bad + "}", header);
        std::string head = header.dump();
        std::vector<uint8_t> frame{'C', 'H', 'B', '1', 0, 0, 0, uint8_t(head.size())};
        frame.insert(frame.end(), head.begin(), head.end());
        frame.push_back('x');
        crc_error = chibi::Error();
        expect(!chibi::decode_frame(frame.data(), frame.size(), crc_header, crc_payload, crc_size, crc_error) && crc_error.code == "bad_message", bad);
    }
    chibi::ClientSession session;
    chibi::Json hello;
    expect(chibi::parse_json(session.hello(1, "", "selftest"), hello) && hello["checksums"].dump() == "[\"crc32\",\"sha256\"]", "hello asks crc32, then sha256");
    expect(session.receive_text("{\"type\":\"welcome\",\"version\":1,\"chunk_bytes\":1024}").front().kind == chibi::Event::Kind::Welcome, "welcome");
    expect(session.checksum() == chibi::Checksum::Sha256, "a welcome without checksum (older server) -> sha256");
    chibi::Error error;
    session.params_request("a", chibi::Json::object(), chibi::RequestOptions(), error);
    expect(error.empty(), "request registered");
    auto early = session.receive_text("{\"type\":\"done\",\"id\":\"a\",\"items\":1}");
    expect(early.size() == 1 && early[0].kind == chibi::Event::Kind::Failed && early[0].error.code == "bad_message", "done without result -> bad_message");
    // A crc32 connection: the result announces crc32, chunks carry it, a wrong one fails the request.
    chibi::ClientSession crc;
    crc.hello(1, "", "selftest");
    crc.receive_text("{\"type\":\"welcome\",\"version\":1,\"chunk_bytes\":1024,\"checksum\":\"crc32\"}");
    expect(crc.checksum() == chibi::Checksum::Crc32, "welcome.checksum crc32");
    std::string crc_hex = chibi::Crc32::hex(blob.data(), blob.size());
    auto deliver = [&](const std::string& id, const std::string& announced, const std::vector<uint8_t>& model, chibi::Checksum checksum, bool corrupt) {
        chibi::Error e;
        crc.params_request(id, chibi::Json::object(), chibi::RequestOptions(), e);
        std::string result = "{\"type\":\"result\",\"id\":\"" + id + "\",\"item\":0,\"items\":1,\"format\":\"glb\",\"model\":{\"size\":3000,\"crc32\":\"" +
                             announced + "\",\"chunks\":3}}";
        std::vector<chibi::Event> events = crc.receive_text(result);
        auto parts = chibi::encode_blob(id, "model", model, 1024, checksum);
        if (corrupt) parts.back().back() ^= 0x01;  // a payload byte, headers intact
        for (const auto& part : parts)
            for (auto& event : crc.receive_binary(part.data(), part.size())) events.push_back(event);
        for (auto& event : crc.receive_text("{\"type\":\"done\",\"id\":\"" + id + "\",\"items\":1}")) events.push_back(event);
        return events;
    };
    auto good = deliver("g1", crc_hex, blob, chibi::Checksum::Crc32, false);
    expect(good.size() == 1 && good[0].kind == chibi::Event::Kind::Completed && good[0].results[0].model == blob &&
               good[0].results[0].model_digest == crc_hex && good[0].results[0].checksum == chibi::Checksum::Crc32,
           "crc32 connection: blob verified and delivered");
    std::vector<uint8_t> other = blob;
    other[1500] ^= 0x01;
    auto bad = deliver("b1", crc_hex, blob, chibi::Checksum::Crc32, true);
    expect(!bad.empty() && bad[0].kind == chibi::Event::Kind::Failed && bad[0].error.code == "checksum_mismatch", "crc32 connection: corrupt blob -> checksum_mismatch");
    auto differs = deliver("d1", crc_hex, other, chibi::Checksum::Crc32, false);  // chunks announce another CRC
    expect(!differs.empty() && differs[0].kind == chibi::Event::Kind::Failed && differs[0].error.code == "bad_message", "crc32 connection: chunks differ from the result -> bad_message");
    auto sha_only = deliver("s1", crc_hex, blob, chibi::Checksum::Sha256, false);
    expect(!sha_only.empty() && sha_only[0].kind == chibi::Event::Kind::Failed && sha_only[0].error.code == "bad_message", "crc32 connection: sha256 chunks -> bad_message");
    chibi::Error photo_error;
    auto upload = crc.photo_request("p1", blob, chibi::RequestOptions(), photo_error);
    expect(upload.size() == 4 && !upload[1].text && upload[1].data.find("\"crc32\":\"" + crc_hex + "\"") != std::string::npos &&
               upload[1].data.find("sha256") == std::string::npos,
           "photo chunks carry the connection's crc32");
    chibi::ClientSession sha256_only;
    sha256_only.offer_crc32 = false;
    expect(chibi::parse_json(sha256_only.hello(1, "", "selftest"), hello) && !hello.has("checksums"), "sha256 only: hello without checksums");
    auto refused = sha256_only.receive_text("{\"type\":\"welcome\",\"version\":1,\"chunk_bytes\":1024,\"checksum\":\"crc32\"}");
    expect(!refused.empty() && refused.back().kind == chibi::Event::Kind::ConnectionFailed && refused.back().error.code == "bad_message",
           "welcome choosing a checksum not offered -> bad_message");
    std::cout << (failures == 0 ? "selftest ok\n" : "selftest FAILED\n");
    return failures == 0 ? 0 : 1;
}

int usage() {
    std::cerr << "usage: chibi_console_client --url WS_URL [--token T] [--token-in-hello] (--params JSON | --photo FILE)\n"
                 "       [--format glb|vrm1|vrm0] [--quality default|high] [--no-thumbnail] [--preview-out FILE] [--out FILE]\n"
                 "       [--cancel-at STAGE] [--version N] [--timeout S] [--max-chunk-bytes N] [--sha256-only]\n"
                 "       chibi_console_client --selftest | --sha256 FILE | --crc32 FILE\n";
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    std::vector<std::string> args(argv + 1, argv + argc);
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        bool has_value = i + 1 < args.size();
        if (a == "--selftest") return self_test();
        if (a == "--token-in-hello") { options.token_in_hello = true; continue; }
        if (a == "--no-thumbnail") { options.request.thumbnail = false; continue; }
        if (a == "--sha256-only") { options.sha256_only = true; continue; }
        if (!has_value) return usage();
        const std::string& v = args[++i];
        if (a == "--sha256" || a == "--crc32") {
            std::vector<uint8_t> data;
            if (!read_file(v, data)) return usage();
            auto checksum = a == "--crc32" ? chibi::Checksum::Crc32 : chibi::Checksum::Sha256;
            std::cout << chibi::blob_digest(checksum, data.data(), data.size()) << "\n";
            return 0;
        }
        if (a == "--url") options.url = v;
        else if (a == "--token") options.token = v;
        else if (a == "--params") options.params = v;
        else if (a == "--photo") options.photo = v;
        else if (a == "--out") options.out = v;
        else if (a == "--preview-out") { options.preview = v; options.request.return_preview = true; }
        else if (a == "--format") options.request.format = v;
        else if (a == "--quality") options.request.quality = v;
        else if (a == "--cancel-at") options.cancel_at = v;
        else if (a == "--version") options.version = std::atoi(v.c_str());
        else if (a == "--timeout") options.timeout_s = std::atoi(v.c_str());
        else if (a == "--max-chunk-bytes") options.max_chunk_bytes = std::atoll(v.c_str());
        else return usage();
    }
    if (options.url.empty()) return usage();

    Conversation conversation(options);
    conversation.run();
    chibi::Json summary = chibi::Json::object();
    chibi::Json stages = chibi::Json::array();
    for (const auto& stage : conversation.stages()) stages.push(stage);
    summary.set("stages", stages).set("binary_messages", conversation.binary_messages());
    const chibi::Json& welcome = conversation.session().welcome();
    // The checksum the server chose, as welcome.checksum said it (null: no welcome, or a server
    // before the choice), and the one the session then used.
    summary.set("welcome_checksum", welcome["checksum"]);
    summary.set("checksum", welcome.is_object() ? chibi::Json(chibi::checksum_name(conversation.session().checksum())) : chibi::Json());
    if (!conversation.succeeded()) {
        const chibi::Error& e = conversation.error();
        chibi::Json supported = chibi::Json::array();
        for (int version : e.supported) supported.push(version);
        summary.set("ok", false).set("code", e.code).set("message", e.message).set("field", e.field).set("fatal", e.fatal).set("supported", supported);
        std::cerr << "error " << e.describe() << "\n";
        std::cout << summary.dump() << "\n";
        return e.code == "usage" ? 2 : 1;
    }
    const chibi::AvatarResult& r = conversation.result();
    // Both digests, recomputed here, so a test can compare them with its own hashlib / zlib.
    std::string sha = chibi::Sha256::hex(r.model.data(), r.model.size());
    std::string crc = chibi::Crc32::hex(r.model.data(), r.model.size());
    bool ok = (r.checksum == chibi::Checksum::Crc32 ? crc : sha) == r.model_digest;
    auto vrm = chibi::vrm_version_of_glb(r.model);
    summary.set("ok", ok).set("format", r.format).set("bytes", int64_t(r.model.size())).set("sha256", sha).set("crc32", crc);
    summary.set("announced", r.model_digest).set("vrm", vrm ? chibi::Json(*vrm) : chibi::Json()).set("preview_bytes", int64_t(r.preview.size()));
    if (!options.out.empty() && !write_file(options.out, r.model)) return usage();
    if (!options.preview.empty() && !write_file(options.preview, r.preview)) return usage();
    std::cout << summary.dump() << "\n";
    return ok ? 0 : 1;
}
