/** `train=0.8,val=0.1,test=0.1` -> fractions, and fractions -> whole sample counts. */
import {ExitCode, UserError} from '../../util/errors.js'
import {SPLITS} from '../tasks.js'

export type SplitFractions = Record<string, number>

export const DEFAULT_SPLITS: SplitFractions = {train: 0.8, val: 0.1, test: 0.1}

export function parseSplits(text: string): SplitFractions {
  const out: SplitFractions = {}
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([a-z]+)\s*=\s*([0-9]*\.?[0-9]+)$/.exec(part)
    if (!m) throw bad(`"${part}" is not NAME=FRACTION.`)
    if (!(SPLITS as readonly string[]).includes(m[1])) throw bad(`unknown split "${m[1]}" (use ${SPLITS.join(', ')}).`)
    if (m[1] in out) throw bad(`split "${m[1]}" is given twice.`)
    out[m[1]] = Number(m[2])
  }
  checkFractions(out)
  return out
}

export function checkFractions(fractions: SplitFractions): void {
  const entries = Object.entries(fractions)
  if (entries.length === 0) throw bad('no splits given.')
  for (const [name, f] of entries) if (!(f > 0)) throw bad(`split "${name}" has fraction ${f}; fractions must be > 0.`)
  const sum = entries.reduce((s, [, f]) => s + f, 0)
  if (Math.abs(sum - 1) > 1e-6) throw bad(`fractions add up to ${Number(sum.toFixed(6))}, not 1.`)
}

/**
 * Largest-remainder rounding, then every split gets at least one sample (taken from the
 * largest) so no split file is empty. Order follows the input.
 */
export function splitCounts(samples: number, fractions: SplitFractions): Record<string, number> {
  const names = Object.keys(fractions)
  if (!Number.isInteger(samples) || samples < names.length) {
    throw bad(`--samples ${samples} is too few for ${names.length} splits (${names.join(', ')}): need at least one sample each.`)
  }
  const raw = names.map((n) => samples * fractions[n])
  const counts = raw.map(Math.floor)
  let left = samples - counts.reduce((a, b) => a + b, 0)
  const order = names.map((_, i) => i).sort((a, b) => raw[b] - counts[b] - (raw[a] - counts[a]) || a - b)
  for (const i of order) {
    if (left <= 0) break
    counts[i]++
    left--
  }
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] === 0) {
      const big = counts.indexOf(Math.max(...counts))
      counts[big]--
      counts[i]++
    }
  }
  return Object.fromEntries(names.map((n, i) => [n, counts[i]]))
}

function bad(message: string): UserError {
  return new UserError(`Invalid --splits: ${message}`, {
    code: 'DATA_BAD_SPLITS',
    hint: 'Write it as train=0.8,val=0.1,test=0.1 (fractions adding up to 1).',
    exitCode: ExitCode.USAGE,
  })
}
