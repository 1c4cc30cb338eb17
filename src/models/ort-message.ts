/**
 * onnxruntime's error messages made fit for one line of a notice.
 *
 * onnxruntime formats a failed check as `<source file>:<line> <C++ function signature> <condition>
 * was false. <message>` (ORT_ENFORCE, include/onnxruntime/core/common/common.h) and a thrown
 * error as `<source file>:<line> <signature> <message>`; the Node binding may prefix
 * `[ErrorCode:...] : <n> : <NAME> : `. Only <message> helps a user, e.g. for WebGPU on a machine
 * without a GPU: "Failed to get a WebGPU adapter: No supported adapters".
 */

/** The first line of `e`'s message without onnxruntime's source locations, at most `max` chars. */
export function ortMessage(e: unknown, max = 160): string {
  const raw = e instanceof Error ? e.message : String(e);
  let msg = raw.replace(/^\s*\[[^\]]*\]\s*:\s*\d+\s*:\s*\w+\s*:\s*/, "");
  const location = /^\S+\.(?:cc|cpp|cu|h|hpp):\d+\s+/.exec(msg);
  if (location) msg = withoutSignature(msg.slice(location[0].length));
  const enforced = / was false\.\s+/.exec(msg);
  if (enforced) msg = msg.slice(enforced.index + enforced[0].length);
  const line = msg.split("\n").find((l) => l.trim()) ?? "";
  // Source paths left inside the text (a nested status) are noise too.
  return clip(line.replace(/\S+\.(?:cc|cpp|cu|h|hpp):\d+\s*/g, "").trim(), max);
}

/** `s` cut to `max` characters, marking the cut. */
export function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 3)}...`;
}

/**
 * Drops a leading C++ signature such as `onnxruntime::webgpu::WebGpuContext::Initialize(const
 * Config&)::<lambda()>`: a token with `::`, read to the first space outside brackets.
 */
function withoutSignature(msg: string): string {
  if (!/^[\w~]+(::|<|\()/.test(msg) || !msg.slice(0, msg.search(/[\s(]|$/)).includes("::")) return msg;
  let depth = 0;
  for (let i = 0; i < msg.length; i++) {
    const c = msg[i];
    if (c === "(" || c === "<") depth++;
    else if ((c === ")" || c === ">") && depth > 0) depth--;
    else if (c === " " && depth === 0) return msg.slice(i + 1);
  }
  return msg;
}
