// A small JSON value, reader and writer for the chibi protocol's control messages.
// Portable C++17, no exceptions (Unreal builds with exceptions off), no Unreal types.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chibi {

class Json {
public:
    enum class Type { Null, Bool, Number, String, Array, Object };
    using Array = std::vector<Json>;
    // Members keep insertion order (written back in the same order).
    using Object = std::vector<std::pair<std::string, Json>>;

    Json() = default;
    Json(std::nullptr_t) {}
    Json(bool value) : type_(Type::Bool), bool_(value) {}
    Json(int value) : type_(Type::Number), number_(value), integer_(true) {}
    Json(int64_t value) : type_(Type::Number), number_(static_cast<double>(value)), integer_(true) {}
    Json(double value) : type_(Type::Number), number_(value) {}
    Json(const char* value) : type_(Type::String), string_(value) {}
    Json(std::string value) : type_(Type::String), string_(std::move(value)) {}
    Json(Array value) : type_(Type::Array), array_(std::make_shared<Array>(std::move(value))) {}
    Json(Object value) : type_(Type::Object), object_(std::make_shared<Object>(std::move(value))) {}

    static Json object() { return Json(Object{}); }
    static Json array() { return Json(Array{}); }

    Type type() const { return type_; }
    bool is_null() const { return type_ == Type::Null; }
    bool is_bool() const { return type_ == Type::Bool; }
    bool is_number() const { return type_ == Type::Number; }
    bool is_string() const { return type_ == Type::String; }
    bool is_array() const { return type_ == Type::Array; }
    bool is_object() const { return type_ == Type::Object; }
    // A number written without fraction or exponent (or built from an integer).
    bool is_integer() const { return type_ == Type::Number && integer_; }

    bool as_bool() const { return bool_; }
    double as_number() const { return number_; }
    int64_t as_int() const { return static_cast<int64_t>(number_); }
    const std::string& as_string() const { return string_; }
    const Array& as_array() const;
    const Object& as_object() const;

    // Object access: the member, or a shared null value when absent / not an object.
    const Json& operator[](std::string_view key) const;
    bool has(std::string_view key) const;
    // Adds or replaces a member (turns a null value into an object first).
    Json& set(std::string key, Json value);
    // Appends to an array (turns a null value into an array first).
    Json& push(Json value);

    // Typed lookups of object members.
    std::optional<std::string> get_string(std::string_view key) const;
    std::optional<int64_t> get_int(std::string_view key) const;
    std::optional<double> get_number(std::string_view key) const;
    std::optional<bool> get_bool(std::string_view key) const;

    // Compact JSON text (non-ASCII stays UTF-8; control characters are escaped).
    std::string dump() const;

private:
    void write(std::string& out) const;

    Type type_ = Type::Null;
    bool bool_ = false;
    double number_ = 0;
    bool integer_ = false;
    std::string string_;
    std::shared_ptr<Array> array_;    // shared: cheap copies of parsed messages
    std::shared_ptr<Object> object_;
};

// Parses one JSON text (a value plus whitespace). On failure returns false and sets error.
// Nesting deeper than 64 levels is refused, so hostile input cannot exhaust the stack.
bool parse_json(std::string_view text, Json& out, std::string* error = nullptr);

}  // namespace chibi
