/** Lines of a file a sink appends to, as a test reads them while it writes. */

/** The file's complete lines (none when it does not exist): the line being appended (no newline yet) may be partial. */
export async function completeLines(file: string): Promise<string[]> {
  const f = Bun.file(file);
  const text = (await f.exists()) ? await f.text() : "";
  const complete = text.slice(0, text.lastIndexOf("\n") + 1).trim();
  return complete === "" ? [] : complete.split("\n");
}
