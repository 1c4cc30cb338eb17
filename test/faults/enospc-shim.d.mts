/** Types of enospc-shim.mjs (a plain .mjs so that a child process can `--import` it). */
export function failWritesWithEnospc(match: string): () => void;
