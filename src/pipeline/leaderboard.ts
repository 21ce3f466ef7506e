/**
 * The leaderboard: one CSV row per run (rewritten atomically, keyed by run_id so a rerun
 * replaces its row instead of adding one) and a self-contained HTML table rendered from it.
 * Labels: `baseline` (reference rows, added by hand or demoted champions), `candidate` (a run
 * that did not pass the full gate), `champion` (the one run that passed it last).
 */
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {ExitCode, UserError, fsError} from '../util/errors.js'
import {writeFileAtomic} from '../util/fs.js'
import {withLock} from '../util/lock.js'
import type {Baseline} from './gates.js'

export const DEFAULT_LEADERBOARD_CSV = join('artifacts', 'leaderboard.csv')
export const DEFAULT_LEADERBOARD_HTML = join('artifacts', 'leaderboard.html')

/** Columns every row has, in this order; metric columns (small.*, full.*) follow, sorted. */
export const FIXED_COLUMNS = ['run_id', 'label', 'created_at', 'config_hash', 'small_gate', 'full_gate', 'tags', 'notes'] as const

export type LeaderboardRow = Record<string, string>

export interface Leaderboard {
  columns: string[]
  rows: LeaderboardRow[]
}

// ---------------------------------------------------------------- CSV

function csvCell(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value
}

export function formatCsv(board: Leaderboard): string {
  const lines = [board.columns.map(csvCell).join(',')]
  for (const row of board.rows) lines.push(board.columns.map((c) => csvCell(row[c] ?? '')).join(','))
  return lines.join('\n') + '\n'
}

/** RFC 4180 parsing (quoted cells, doubled quotes, newlines inside quotes). */
export function parseCsv(text: string, path = 'leaderboard'): Leaderboard {
  const records: string[][] = []
  let row: string[] = []
  let cell = ''
  let quoted = false
  let i = 0
  const endCell = () => {
    row.push(cell)
    cell = ''
  }
  const endRow = () => {
    endCell()
    if (!(row.length === 1 && row[0] === '')) records.push(row)
    row = []
  }
  while (i < text.length) {
    const ch = text[i]
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"'
        i += 2
        continue
      }
      if (ch === '"') quoted = false
      else cell += ch
      i++
      continue
    }
    if (ch === '"' && cell === '') quoted = true
    else if (ch === ',') endCell()
    else if (ch === '\n') endRow()
    else if (ch !== '\r') cell += ch
    i++
  }
  if (quoted) {
    throw new UserError(`${path} is not valid CSV: a quoted cell is never closed.`, {
      code: 'LEADERBOARD_BAD_CSV',
      hint: 'Fix or move the file away; ups rewrites it on the next run.',
      exitCode: ExitCode.USAGE,
    })
  }
  if (cell !== '' || row.length > 0) endRow()
  if (records.length === 0) return {columns: [...FIXED_COLUMNS], rows: []}
  const [header, ...body] = records
  if (!header.includes('run_id')) {
    throw new UserError(`${path} has no run_id column.`, {code: 'LEADERBOARD_BAD_CSV', hint: 'Its first line must be the header written by ups.', exitCode: ExitCode.USAGE})
  }
  const rows = body.map((cells) => Object.fromEntries(header.map((h, k) => [h, cells[k] ?? ''])))
  return {columns: header, rows}
}

export async function readLeaderboard(path: string): Promise<Leaderboard> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {columns: [...FIXED_COLUMNS], rows: []}
    throw fsError(error, path, 'leaderboard')
  }
  return parseCsv(text, path)
}

function columnsFor(rows: LeaderboardRow[], previous: string[]): string[] {
  const extra = new Set<string>()
  for (const c of previous) if (!(FIXED_COLUMNS as readonly string[]).includes(c)) extra.add(c)
  for (const r of rows) for (const k of Object.keys(r)) if (!(FIXED_COLUMNS as readonly string[]).includes(k)) extra.add(k)
  return [...FIXED_COLUMNS, ...[...extra].sort()]
}

/**
 * Inserts or replaces the row with the same run_id. Promoting a champion demotes the previous
 * one to `baseline` (it stays the reference the next candidate must beat).
 */
export function upsertRow(board: Leaderboard, row: LeaderboardRow): Leaderboard {
  let rows = board.rows.filter((r) => r.run_id !== row.run_id)
  if (row.label === 'champion') rows = rows.map((r) => (r.label === 'champion' ? {...r, label: 'baseline'} : r))
  rows.push(row)
  return {columns: columnsFor(rows, board.columns), rows}
}

/** Baseline and champion rows (other than `excludeRunId`) with their metrics of one prefix. */
export function baselinesOf(board: Leaderboard, prefix: 'small' | 'full', excludeRunId?: string): Baseline[] {
  return board.rows
    .filter((r) => (r.label === 'baseline' || r.label === 'champion') && r.run_id !== excludeRunId)
    .map((r) => ({runId: r.run_id, label: r.label, metrics: metricsOf(r, prefix)}))
}

export function metricsOf(row: LeaderboardRow, prefix: string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(row)) {
    if (!k.startsWith(prefix + '.') || v === '') continue
    const n = Number(v)
    if (Number.isFinite(n)) out[k.slice(prefix.length + 1)] = n
  }
  return out
}

/** Writes the CSV and the HTML (both atomically). */
export async function writeLeaderboard(board: Leaderboard, csvPath: string, htmlPath: string | null): Promise<void> {
  await writeFileAtomic(csvPath, formatCsv(board))
  if (htmlPath) await writeFileAtomic(htmlPath, renderLeaderboardHtml(board))
}

export interface LeaderboardLockOptions {
  /** Recorded in the lock file, e.g. `ups run (run_...)`. */
  command: string
}

/** How long a writer queues behind the others before giving up. */
const LEADERBOARD_WAIT_MS = 120_000

/**
 * Read, upsert, write under `<csv>.lock`: concurrent runs finishing together queue here instead of
 * each rewriting the file it read and losing the others' rows.
 */
export async function updateLeaderboard(csvPath: string, htmlPath: string | null, row: LeaderboardRow, options: LeaderboardLockOptions): Promise<Leaderboard> {
  const lockOptions = {command: options.command, what: `leaderboard ${csvPath}`, code: 'LEADERBOARD_LOCKED', waitMs: LEADERBOARD_WAIT_MS, pollMs: 50}
  return withLock(`${csvPath}.lock`, lockOptions, async () => {
    const board = upsertRow(await readLeaderboard(csvPath), row)
    await writeLeaderboard(board, csvPath, htmlPath)
    return board
  })
}

// ---------------------------------------------------------------- HTML

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** One HTML file, no scripts or external resources: opens anywhere, attachable to a report. */
export function renderLeaderboardHtml(board: Leaderboard, title = 'ups leaderboard'): string {
  const head = board.columns.map((c) => `<th>${esc(c)}</th>`).join('')
  const body = board.rows
    .map((r) => {
      const cells = board.columns
        .map((c) => {
          const v = r[c] ?? ''
          const numeric = v !== '' && Number.isFinite(Number(v))
          return `<td${numeric ? ' class="num"' : ''}>${esc(v)}</td>`
        })
        .join('')
      return `<tr class="${esc(r.label ?? '')}">${cells}</tr>`
    })
    .join('\n')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.champion{background:#e8f6e8;font-weight:600}
tr.baseline{background:#f7f7ff}
</style></head>
<body><h1>${esc(title)}</h1>
<p>${board.rows.length} run(s). Champion rows are green; baselines are the reference a candidate must beat.</p>
<table><thead><tr>${head}</tr></thead>
<tbody>
${body}
</tbody></table></body></html>
`
}
