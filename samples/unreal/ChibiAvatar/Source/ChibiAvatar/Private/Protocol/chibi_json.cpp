#include "chibi_json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace chibi {

namespace {

const Json& null_json() {
    static const Json value;
    return value;
}

constexpr int kMaxDepth = 64;

class Reader {
public:
    explicit Reader(std::string_view text) : text_(text) {}

    bool parse(Json& out, std::string* error) {
        skip_ws();
        if (!value(out, 0)) return fail_out(error);
        skip_ws();
        if (pos_ != text_.size()) {
            error_ = "trailing characters after the value";
            return fail_out(error);
        }
        return true;
    }

private:
    bool fail_out(std::string* error) {
        if (error) *error = error_ + " at byte " + std::to_string(pos_);
        return false;
    }
    bool fail(const char* what) {
        if (error_.empty()) error_ = what;
        return false;
    }
    void skip_ws() {
        while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) ++pos_;
    }
    bool literal(std::string_view word) {
        if (text_.substr(pos_, word.size()) != word) return fail("invalid literal");
        pos_ += word.size();
        return true;
    }

    bool value(Json& out, int depth) {
        if (depth > kMaxDepth) return fail("nested too deeply");
        if (pos_ >= text_.size()) return fail("unexpected end of text");
        char c = text_[pos_];
        switch (c) {
            case '{': return object(out, depth);
            case '[': return array(out, depth);
            case '"': {
                std::string s;
                if (!string(s)) return false;
                out = Json(std::move(s));
                return true;
            }
            case 't': out = Json(true); return literal("true");
            case 'f': out = Json(false); return literal("false");
            case 'n': out = Json(); return literal("null");
            default:
                if (c == '-' || (c >= '0' && c <= '9')) return number(out);
                return fail("unexpected character");
        }
    }

    bool object(Json& out, int depth) {
        Json::Object members;
        ++pos_;
        skip_ws();
        if (pos_ < text_.size() && text_[pos_] == '}') {
            ++pos_;
            out = Json(std::move(members));
            return true;
        }
        while (true) {
            skip_ws();
            if (pos_ >= text_.size() || text_[pos_] != '"') return fail("expected a string key");
            std::string key;
            if (!string(key)) return false;
            skip_ws();
            if (pos_ >= text_.size() || text_[pos_] != ':') return fail("expected ':'");
            ++pos_;
            skip_ws();
            Json member;
            if (!value(member, depth + 1)) return false;
            bool replaced = false;  // like Python's json: the last duplicate wins
            for (auto& pair : members)
                if (pair.first == key) {
                    pair.second = std::move(member);
                    replaced = true;
                    break;
                }
            if (!replaced) members.emplace_back(std::move(key), std::move(member));
            skip_ws();
            if (pos_ >= text_.size()) return fail("unterminated object");
            char c = text_[pos_++];
            if (c == '}') break;
            if (c != ',') return fail("expected ',' or '}'");
        }
        out = Json(std::move(members));
        return true;
    }

    bool array(Json& out, int depth) {
        Json::Array items;
        ++pos_;
        skip_ws();
        if (pos_ < text_.size() && text_[pos_] == ']') {
            ++pos_;
            out = Json(std::move(items));
            return true;
        }
        while (true) {
            skip_ws();
            Json item;
            if (!value(item, depth + 1)) return false;
            items.push_back(std::move(item));
            skip_ws();
            if (pos_ >= text_.size()) return fail("unterminated array");
            char c = text_[pos_++];
            if (c == ']') break;
            if (c != ',') return fail("expected ',' or ']'");
        }
        out = Json(std::move(items));
        return true;
    }

    bool hex4(uint32_t& code) {
        if (pos_ + 4 > text_.size()) return fail("short \\u escape");
        code = 0;
        for (int i = 0; i < 4; ++i) {
            char h = text_[pos_++];
            int digit = (h >= '0' && h <= '9') ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
            if (digit < 0) return fail("invalid \\u escape");
            code = code * 16 + static_cast<uint32_t>(digit);
        }
        return true;
    }

    static void append_utf8(std::string& s, uint32_t cp) {
        if (cp < 0x80) {
            s += static_cast<char>(cp);
        } else if (cp < 0x800) {
            s += static_cast<char>(0xC0 | (cp >> 6));
            s += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            s += static_cast<char>(0xE0 | (cp >> 12));
            s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            s += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            s += static_cast<char>(0xF0 | (cp >> 18));
            s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            s += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }

    bool string(std::string& s) {
        ++pos_;  // opening quote
        while (true) {
            if (pos_ >= text_.size()) return fail("unterminated string");
            char c = text_[pos_++];
            if (c == '"') return true;
            if (static_cast<unsigned char>(c) < 0x20) return fail("control character in string");
            if (c != '\\') {
                s += c;
                continue;
            }
            if (pos_ >= text_.size()) return fail("unterminated escape");
            char e = text_[pos_++];
            switch (e) {
                case '"': s += '"'; break;
                case '\\': s += '\\'; break;
                case '/': s += '/'; break;
                case 'b': s += '\b'; break;
                case 'f': s += '\f'; break;
                case 'n': s += '\n'; break;
                case 'r': s += '\r'; break;
                case 't': s += '\t'; break;
                case 'u': {
                    uint32_t code;
                    if (!hex4(code)) return false;
                    // A surrogate pair arrives as two escapes; join it into one code point.
                    if (code >= 0xD800 && code < 0xDC00 && text_.substr(pos_, 2) == "\\u") {
                        size_t save = pos_;
                        pos_ += 2;
                        uint32_t low;
                        if (!hex4(low)) return false;
                        if (low >= 0xDC00 && low < 0xE000) code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                        else pos_ = save;
                    }
                    append_utf8(s, code);
                    break;
                }
                default: return fail("invalid escape");
            }
        }
    }

    bool number(Json& out) {
        size_t start = pos_;
        bool integer = true;
        if (text_[pos_] == '-') ++pos_;
        if (pos_ >= text_.size()) return fail("invalid number");
        if (text_[pos_] == '0') ++pos_;
        else if (text_[pos_] >= '1' && text_[pos_] <= '9') digits();
        else return fail("invalid number");
        if (pos_ < text_.size() && text_[pos_] == '.') {
            integer = false;
            ++pos_;
            if (!digit_at(pos_)) return fail("digit expected after '.'");
            digits();
        }
        if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
            integer = false;
            ++pos_;
            if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
            if (!digit_at(pos_)) return fail("digit expected in exponent");
            digits();
        }
        std::string token(text_.substr(start, pos_ - start));
        if (integer) {
            // Integers in the protocol stay below 2^53; larger ones become doubles.
            char* end = nullptr;
            long long v = std::strtoll(token.c_str(), &end, 10);
            if (end && *end == '\0' && v > -(1LL << 53) && v < (1LL << 53)) {
                out = Json(static_cast<int64_t>(v));
                return true;
            }
        }
        out = Json(std::strtod(token.c_str(), nullptr));
        return true;
    }

    bool digit_at(size_t i) const { return i < text_.size() && text_[i] >= '0' && text_[i] <= '9'; }
    void digits() {
        while (digit_at(pos_)) ++pos_;
    }

    std::string_view text_;
    size_t pos_ = 0;
    std::string error_;
};

void write_string(std::string& out, const std::string& s) {
    out += '"';
    for (char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buffer[8];
                    std::snprintf(buffer, sizeof buffer, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
                    out += buffer;
                } else {
                    out += c;
                }
        }
    }
    out += '"';
}

}  // namespace

const Json::Array& Json::as_array() const {
    static const Array empty;
    return array_ ? *array_ : empty;
}

const Json::Object& Json::as_object() const {
    static const Object empty;
    return object_ ? *object_ : empty;
}

const Json& Json::operator[](std::string_view key) const {
    if (type_ == Type::Object)
        for (const auto& pair : *object_)
            if (pair.first == key) return pair.second;
    return null_json();
}

bool Json::has(std::string_view key) const {
    if (type_ != Type::Object) return false;
    for (const auto& pair : *object_)
        if (pair.first == key) return true;
    return false;
}

Json& Json::set(std::string key, Json value) {
    if (type_ != Type::Object) *this = Json(Object{});
    if (object_.use_count() > 1) object_ = std::make_shared<Object>(*object_);  // copy on write
    for (auto& pair : *object_)
        if (pair.first == key) {
            pair.second = std::move(value);
            return *this;
        }
    object_->emplace_back(std::move(key), std::move(value));
    return *this;
}

Json& Json::push(Json value) {
    if (type_ != Type::Array) *this = Json(Array{});
    if (array_.use_count() > 1) array_ = std::make_shared<Array>(*array_);
    array_->push_back(std::move(value));
    return *this;
}

std::optional<std::string> Json::get_string(std::string_view key) const {
    const Json& v = (*this)[key];
    if (v.is_string()) return v.as_string();
    return std::nullopt;
}

std::optional<int64_t> Json::get_int(std::string_view key) const {
    const Json& v = (*this)[key];
    if (v.is_number() && std::floor(v.number_) == v.number_ && std::fabs(v.number_) < 9007199254740992.0) return v.as_int();
    return std::nullopt;
}

std::optional<double> Json::get_number(std::string_view key) const {
    const Json& v = (*this)[key];
    if (v.is_number()) return v.as_number();
    return std::nullopt;
}

std::optional<bool> Json::get_bool(std::string_view key) const {
    const Json& v = (*this)[key];
    if (v.is_bool()) return v.as_bool();
    return std::nullopt;
}

std::string Json::dump() const {
    std::string out;
    write(out);
    return out;
}

void Json::write(std::string& out) const {
    switch (type_) {
        case Type::Null: out += "null"; break;
        case Type::Bool: out += bool_ ? "true" : "false"; break;
        case Type::Number: {
            if (!std::isfinite(number_)) {
                out += "null";  // JSON has no NaN/Infinity
            } else if (integer_ || (std::floor(number_) == number_ && std::fabs(number_) < 9007199254740992.0)) {
                out += std::to_string(static_cast<long long>(number_));
            } else {
                char buffer[32];
                std::snprintf(buffer, sizeof buffer, "%.17g", number_);
                out += buffer;
            }
            break;
        }
        case Type::String: write_string(out, string_); break;
        case Type::Array: {
            out += '[';
            bool first = true;
            for (const auto& item : *array_) {
                if (!first) out += ',';
                first = false;
                item.write(out);
            }
            out += ']';
            break;
        }
        case Type::Object: {
            out += '{';
            bool first = true;
            for (const auto& pair : *object_) {
                if (!first) out += ',';
                first = false;
                write_string(out, pair.first);
                out += ':';
                pair.second.write(out);
            }
            out += '}';
            break;
        }
    }
}

bool parse_json(std::string_view text, Json& out, std::string* error) {
    Reader reader(text);
    return reader.parse(out, error);
}

}  // namespace chibi
