/** The other half of the deliberate circle of a.ts: a dynamic import() back to it. */
export interface Answer {
  value: number;
}

export async function loadQuestion(): Promise<Answer> {
  return (await import("./a.js")).question;
}
