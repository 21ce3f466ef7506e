/**
 * Train, val and test must not share data: `ups data validate` compares every pair of files of
 * one task across splits. The same file (same path after symlinks, or the same inode: a hard
 * link) is a leak unless both are index splits of one raw file with disjoint ranges; different
 * files whose first samples hash the same are copies.
 */
import {realpath, stat} from 'node:fs/promises'

import {type IndexRanges, formatRanges, rangesOverlap} from './split.js'

export interface SplitFile {
  task: string
  split: string
  path: string
  /** Set for an index split of a raw file. */
  ranges?: IndexRanges
  /** sha256 of the first samples as read (null: not read). */
  fingerprint: string | null
}

export interface Overlap {
  a: SplitFile
  b: SplitFile
  reason: string
}

interface Identity {
  real: string
  inode: string | null
}

async function identity(path: string): Promise<Identity> {
  let real = path
  try {
    real = await realpath(path)
  } catch {
    // unreadable: compared by path only
  }
  try {
    const s = await stat(path)
    return {real, inode: `${s.dev}:${s.ino}`}
  } catch {
    return {real, inode: null}
  }
}

export async function findOverlaps(files: SplitFile[]): Promise<Overlap[]> {
  const ids = await Promise.all(files.map((f) => identity(f.path)))
  const out: Overlap[] = []
  for (let i = 0; i < files.length; i++) {
    for (let j = i + 1; j < files.length; j++) {
      const a = files[i]
      const b = files[j]
      if (a.task !== b.task || canonicalSplit(a.split) === canonicalSplit(b.split)) continue
      const same = ids[i].real === ids[j].real || (ids[i].inode !== null && ids[i].inode === ids[j].inode)
      if (same) {
        if (a.ranges && b.ranges) {
          const shared = rangesOverlap(a.ranges, b.ranges)
          if (shared) out.push({a, b, reason: `${a.split} and ${b.split} both read samples ${formatRanges([shared])} of ${ids[i].real}`})
          continue
        }
        const how = ids[i].real === ids[j].real ? (a.path === b.path ? 'are the same file' : `are the same file (${ids[i].real}, through a symlink)`) : 'are the same file (hard links to one inode)'
        out.push({a, b, reason: `${a.path} (${a.split}) and ${b.path} (${b.split}) ${how}`})
        continue
      }
      if (a.fingerprint && a.fingerprint === b.fingerprint) {
        out.push({a, b, reason: `${a.path} (${a.split}) and ${b.path} (${b.split}) hold identical samples (their first samples hash the same): copies of one file`})
      }
    }
  }
  return out
}

export const OVERLAP_FIX =
  'give each split its own data, or keep only the raw PDEBench file in the data root (no {task}_{split}.h5 files) so ups splits it by sample index into disjoint train/val/test'

function canonicalSplit(s: string): string {
  return s === 'valid' ? 'val' : s
}
