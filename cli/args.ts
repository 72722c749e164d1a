/** What node:util's parseArgs says of bad arguments, on one line (it writes some over three). */
export function argumentProblem(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).trim().replace(/\s*\n\s*/g, " ");
}
