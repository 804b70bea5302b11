#include "chibi_crc32.h"

namespace chibi {

namespace {

// Slicing-by-8: table k maps a byte to its CRC contribution k bytes further on, so the loop
// folds 8 bytes per step with independent lookups instead of one byte per dependent lookup
// (0.21 ms for a 660 kB avatar against 1.24 ms with one table, and 1.9 ms for Sha256, with
// g++ -O1 or -O2 on an x86-64 server).
struct Tables {
    uint32_t t[8][256];
};

constexpr Tables make_tables() {
    Tables tables{};
    for (uint32_t i = 0; i < 256; ++i) {
        uint32_t c = i;
        for (int bit = 0; bit < 8; ++bit) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        tables.t[0][i] = c;
    }
    for (int k = 1; k < 8; ++k)
        for (int i = 0; i < 256; ++i) tables.t[k][i] = (tables.t[k - 1][i] >> 8) ^ tables.t[0][tables.t[k - 1][i] & 0xff];
    return tables;
}

// Not a constexpr variable: forcing the 8 KiB through constant evaluation could exceed a
// compiler's evaluation limit, which g++ here cannot check for Unreal's Windows compiler.
// g++ still builds it at compile time (it lands in .rodata); a compiler that does not
// builds it once, on first use (thread-safe).
const Tables& tables() {
    static const Tables built = make_tables();
    return built;
}

}  // namespace

void Crc32::update(const uint8_t* p, size_t size) {
    const auto& t = tables().t;
    uint32_t c = state_;
    // Bytes are assembled one by one (no unaligned or endian-dependent loads); compilers turn
    // this into one 32-bit load on little-endian targets.
    for (; size >= 8; p += 8, size -= 8) {
        uint32_t low = c ^ (uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24));
        c = t[7][low & 0xff] ^ t[6][(low >> 8) & 0xff] ^ t[5][(low >> 16) & 0xff] ^ t[4][low >> 24] ^
            t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
    }
    for (; size > 0; ++p, --size) c = (c >> 8) ^ t[0][(c ^ *p) & 0xff];
    state_ = c;
}

std::string Crc32::hex(const uint8_t* data, size_t size) {
    Crc32 crc;
    crc.update(data, size);
    uint32_t value = crc.value();
    static const char digits[] = "0123456789abcdef";
    std::string out(8, '0');
    for (int i = 7; i >= 0; --i, value >>= 4) out[size_t(i)] = digits[value & 15];
    return out;
}

}  // namespace chibi
