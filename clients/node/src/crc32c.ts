// CRC32C (Castagnoli): reflected polynomial 0x82F63B78, initial value and final XOR
// 0xFFFFFFFF, so that crc32c("123456789") = 0xE3069283 (PROTOCOL.md, "Conventions").

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte;
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
    }
    table[byte] = crc >>> 0;
  }
  return table;
})();

/** CRC32C of `data`, continuing from the CRC `crc` of the bytes before it. */
export function crc32c(data: Uint8Array, crc = 0): number {
  let value = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) {
    value = (TABLE[(value ^ data[i]!) & 0xff]! ^ (value >>> 8)) >>> 0;
  }
  return (value ^ 0xffffffff) >>> 0;
}
