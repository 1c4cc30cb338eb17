/**
 * Half of a deliberate import circle (with b.ts) that imports.test.ts must find: this side is a
 * type-only import, the other a dynamic import(), the two kinds of edge a checker could miss.
 */
import type { Answer } from "./b.js";

export const question: Answer = { value: 42 };
