/** Image and array files built byte by byte, for tests of the readers (and fuzz seeds). */

/**
 * A 24-bit BMP (BITMAPINFOHEADER, rows padded to 4 bytes), bottom-up unless `topDown` (a negative
 * height); `rgb` holds width x height x 3 values, row-major from the top.
 */
export function bmp24(width: number, height: number, rgb: ArrayLike<number>, topDown = false): Uint8Array {
  const stride = Math.ceil((width * 3) / 4) * 4;
  const buf = Buffer.alloc(54 + stride * height);
  buf.write("BM", 0, "latin1");
  buf.writeUInt32LE(buf.length, 2);
  buf.writeUInt32LE(54, 10);
  buf.writeUInt32LE(40, 14);
  buf.writeInt32LE(width, 18);
  buf.writeInt32LE(topDown ? -height : height, 22);
  buf.writeUInt16LE(1, 26);
  buf.writeUInt16LE(24, 28);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const src = (y * width + x) * 3;
      const dst = 54 + (topDown ? y : height - 1 - y) * stride + x * 3;
      buf[dst] = rgb[src + 2];
      buf[dst + 1] = rgb[src + 1];
      buf[dst + 2] = rgb[src];
    }
  }
  return new Uint8Array(buf);
}

/** A .npy file with an arbitrary header dict and payload (numpy's layout, versions 1 to 3). */
export function npyBytes(header: string, payload: Uint8Array = new Uint8Array(0), version = 1): Uint8Array {
  const lenBytes = version === 1 ? 2 : 4;
  const enc = version === 3 ? new TextEncoder().encode(header) : Uint8Array.from(header, (c) => c.charCodeAt(0));
  const pad = (64 - ((8 + lenBytes + enc.length + 1) % 64)) % 64;
  const head = new Uint8Array(enc.length + pad + 1).fill(0x20);
  head.set(enc);
  head[head.length - 1] = 0x0a;
  const out = new Uint8Array(8 + lenBytes + head.length + payload.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const view = new DataView(out.buffer);
  if (lenBytes === 2) view.setUint16(8, head.length, true);
  else view.setUint32(8, head.length, true);
  out.set(head, 8 + lenBytes);
  out.set(payload, 8 + lenBytes + head.length);
  return out;
}

/** The parts one after the other, in one new array. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
