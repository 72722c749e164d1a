/**
 * Why a path a config names starts with a `~` that nothing expands (only a shell does): a file kubemeta makes there is
 * in the working directory (under a folder named `~`), not in the home folder meant, and one it reads is not found
 * there. Undefined for any other. `scheme`: what the value writes before the path (`file:`), in the fixes said.
 * `reads`: the path names a file kubemeta only reads. For one it makes, an earlier start (of a kubemeta that took such
 * a path) may have made it there: an operator who writes `${HOME}/…` as told starts on a new file (a store anew, every
 * consumer reset), so the path that keeps the one made is said too.
 */
export function tildeProblem(path: string, options: { scheme?: string; reads?: boolean } = {}): string | undefined {
  if (!/^~[^/]*(?:\/|$)/.test(path)) return undefined;
  const { scheme = "", reads = false } = options;
  const here = `${scheme}./${path}`;
  const fix = `write the whole path, or ${scheme}\${HOME}/…`;
  if (reads) return `starts with ~, which only a shell expands: here it is ${here} in the working directory; ${fix}`;
  return (
    `starts with ~, which only a shell expands: here it is ${here} in the working directory, where an earlier ` +
    `start may have made it; ${fix} (to keep what it made: move it there, or write ${here})`
  );
}
