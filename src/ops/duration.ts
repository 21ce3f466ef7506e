/** Durations as people write them in flags: `7d`, `12h`, `30m`, `2w`, `90s`; a bare number is days. */
import {ExitCode, UserError} from '../util/errors.js'

const UNIT_MS: Record<string, number> = {s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000}

export function parseDuration(text: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$/i.exec(text)
  if (!m) {
    throw new UserError(`--${flag} "${text}" is not a duration.`, {
      code: 'OPS_BAD_DURATION',
      hint: 'Write a number and a unit: 30m, 12h, 7d, 2w (a bare number is days).',
      exitCode: ExitCode.USAGE,
    })
  }
  return Number(m[1]) * UNIT_MS[(m[2] || 'd').toLowerCase()]
}

export function formatAge(ms: number): string {
  const d = ms / 86_400_000
  if (d >= 1) return `${d.toFixed(1)} d`
  const h = ms / 3_600_000
  return h >= 1 ? `${h.toFixed(1)} h` : `${Math.max(0, Math.round(ms / 60_000))} min`
}
