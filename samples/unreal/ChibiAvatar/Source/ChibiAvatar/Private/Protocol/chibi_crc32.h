// CRC-32 as zlib, PNG and zip compute it (reflected polynomial 0xEDB88320, initial value and
// final XOR 0xFFFFFFFF), for the blobs of a connection that chose `crc32` at hello: it
// catches what the protocol's checksum is there for (a chunk lost, repeated or misplaced in
// reassembly) at a fraction of SHA-256's cost. Not a defence against tampering; that is
// TLS's job. Portable C++17, no dependencies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace chibi {

class Crc32 {
public:
    void update(const uint8_t* data, size_t size);
    uint32_t value() const { return ~state_; }  // the CRC of everything so far; update may go on

    // Lowercase hex CRC of one buffer, 8 digits, zero-padded (the protocol's `crc32` field).
    static std::string hex(const uint8_t* data, size_t size);

private:
    uint32_t state_ = 0xFFFFFFFFu;
};

}  // namespace chibi
