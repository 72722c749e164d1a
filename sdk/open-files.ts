/**
 * The process's open-file limit. Bun raises its soft limit to the hard one as it starts (tests/open-files.test.ts), so
 * what `/proc` says once it runs is the hard limit it was started with, the one every socket and file counts against.
 */
import { readFileSync } from "node:fs";

/** The open-file limit in force, or undefined where `/proc` does not say (not Linux). */
export function openFileLimit(): number | undefined {
  try {
    const limit = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return limit ? Number(limit[1]) : undefined;
  } catch {
    return undefined;
  }
}
