// SHA-256 (FIPS 180-4), small and dependency-free, for checking the blobs the chibi
// protocol sends (every chunk header carries the whole blob's digest). Portable C++17.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace chibi {

class Sha256 {
public:
    Sha256();
    void update(const uint8_t* data, size_t size);
    std::array<uint8_t, 32> finish();  // the object must not be updated afterwards

    // Lowercase hex digest of one buffer.
    static std::string hex(const uint8_t* data, size_t size);

private:
    void block(const uint8_t* chunk);

    uint32_t state_[8];
    uint8_t buffer_[64];
    size_t buffered_ = 0;
    uint64_t total_ = 0;  // bytes
};

}  // namespace chibi
