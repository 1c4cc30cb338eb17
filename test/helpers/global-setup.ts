/** Runs once before all test files. Kept cheap; per-suite fixtures are prepared lazily. */
export default function setup(): void {}
