/**
 * Evaluation results for `ups analyze`: the run's results JSON files (eval/**), compared with
 * the baselines they carry and with the leaderboard champion. Everything here is optional:
 * a run without evaluation, or no leaderboard, gives an empty section, never an error.
 *
 * Results files: `{metrics: {nrmse: ...}, baselines?: {name: {nrmse: ...}}, baseline?: {...},
 * extra?: {...}}` or a flat `{nrmse: ...}` object. Summary keys `eval/<m>`, `eval/baseline_<m>`
 * and `eval/ttc_<m>` (the upstream W&B names) are read too. The leaderboard CSV has `run_id`
 * and `metric:<m>` (or plain `<m>`) columns, as the upstream leaderboard writes it.
 */
import {readdir, readFile} from 'node:fs/promises'
import {join, relative} from 'node:path'

export interface EvalResults {
  /** Where the numbers came from: a path relative to the run dir, or `summary`. */
  source: string
  metrics: Record<string, number>
  baselines: Record<string, Record<string, number>>
}

export interface BaselineComparison {
  source: string
  metric: string
  value: number
  baseline: string
  baselineValue: number
  /** Relative change vs the baseline, positive = better (lower error, or higher score). */
  improvementPct: number | null
  better: boolean
}

export interface ChampionComparison {
  leaderboard: string
  metric: string
  value: number
  champion: {run_id: string; value: number; label?: string}
  improvementPct: number | null
  /** This run beats (or ties) the best other run on the leaderboard. */
  beatsChampion: boolean
  /** Rows on the leaderboard (this run's own rows included). */
  rows: number
}

export interface EvaluationAnalysis {
  results: EvalResults[]
  comparisons: BaselineComparison[]
  champion?: ChampionComparison
  /** Why there is no champion comparison (no leaderboard, no shared metric ...). */
  championNote?: string
  /** TTC vs baseline improvement on nrmse, when both are present (upstream's check). */
  ttcImprovementPct?: number
  /** Files that could not be read, with the reason. */
  unreadable: Array<{path: string; reason: string}>
}

/** Metrics where larger is better; everything else (errors, gaps, violations) is lower-is-better. */
export function higherIsBetter(metric: string): boolean {
  return /acc|r2\b|psnr|ssim|score|improvement|corr|pearson|f1/i.test(metric)
}

export function improvementPct(metric: string, value: number, reference: number): number | null {
  if (!Number.isFinite(value) || !Number.isFinite(reference) || reference === 0) return null
  const change = ((reference - value) / Math.abs(reference)) * 100
  return higherIsBetter(metric) ? -change : change
}

function isBetterOrEqual(metric: string, value: number, reference: number): boolean {
  return higherIsBetter(metric) ? value >= reference : value <= reference
}

function numbers(obj: unknown): Record<string, number> {
  const out: Record<string, number> = {}
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return out
  for (const [k, v] of Object.entries(obj)) if (typeof v === 'number' && Number.isFinite(v)) out[k] = v
  return out
}

/** Parses one results object (tolerant of the shapes described above). */
export function parseResults(value: unknown, source: string): EvalResults | undefined {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined
  const v = value as Record<string, unknown>
  const flat = numbers(v)
  let metrics = v.metrics && typeof v.metrics === 'object' ? numbers(v.metrics) : flat
  const baselines: Record<string, Record<string, number>> = {}
  if (v.baselines && typeof v.baselines === 'object') {
    for (const [name, m] of Object.entries(v.baselines as Record<string, unknown>)) {
      const nums = numbers(m)
      if (Object.keys(nums).length > 0) baselines[name] = nums
    }
  }
  if (v.baseline && typeof v.baseline === 'object') {
    const nums = numbers(v.baseline)
    if (Object.keys(nums).length > 0) baselines.baseline = nums
  }
  // Flat `baseline_<m>` keys next to `<m>` (the upstream summary style).
  const prefixed: Record<string, number> = {}
  for (const [k, x] of Object.entries(metrics)) if (k.startsWith('baseline_')) prefixed[k.slice('baseline_'.length)] = x
  if (Object.keys(prefixed).length > 0) {
    baselines.baseline = {...prefixed, ...baselines.baseline}
    metrics = Object.fromEntries(Object.entries(metrics).filter(([k]) => !k.startsWith('baseline_')))
  }
  if (Object.keys(metrics).length === 0 && Object.keys(baselines).length === 0) return undefined
  return {source, metrics, baselines}
}

/** Evaluation numbers from a summary: eval/<m>, eval/baseline_<m>, eval/ttc_<m>. */
export function resultsFromSummary(summary: Record<string, unknown>): EvalResults | undefined {
  const evalKeys: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(summary)) if (k.startsWith('eval/')) evalKeys[k.slice(5)] = v
  return parseResults(evalKeys, 'summary')
}

/** Every results JSON under <run>/eval (files named *results*.json or metrics.json). */
export async function readEvalResults(runPath: string, evalDir: string): Promise<{results: EvalResults[]; unreadable: EvaluationAnalysis['unreadable']}> {
  const results: EvalResults[] = []
  const unreadable: EvaluationAnalysis['unreadable'] = []
  async function walk(dir: string, depth: number): Promise<void> {
    let entries
    try {
      entries = await readdir(dir, {withFileTypes: true})
    } catch {
      return
    }
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, e.name)
      if (e.isDirectory() && depth < 4) await walk(path, depth + 1)
      else if (e.isFile() && /(^|_|-)(results|metrics)\.json$/.test(e.name) && !e.name.startsWith('.')) {
        const rel = relative(runPath, path)
        try {
          const parsed = parseResults(JSON.parse(await readFile(path, 'utf8')), rel)
          if (parsed) results.push(parsed)
          else unreadable.push({path: rel, reason: 'no numeric metrics'})
        } catch (error) {
          unreadable.push({path: rel, reason: error instanceof SyntaxError ? 'not valid JSON' : (error as Error).message})
        }
      }
    }
  }
  await walk(evalDir, 0)
  return {results, unreadable}
}

/** Compares every metric with every baseline that has it. */
export function compareWithBaselines(results: EvalResults[]): BaselineComparison[] {
  const out: BaselineComparison[] = []
  for (const r of results) {
    for (const [metric, value] of Object.entries(r.metrics)) {
      for (const [baseline, values] of Object.entries(r.baselines)) {
        const baselineValue = values[metric] ?? (metric.startsWith('ttc_') ? values[metric.slice(4)] : undefined)
        if (baselineValue === undefined) continue
        out.push({source: r.source, metric, value, baseline, baselineValue, improvementPct: improvementPct(metric, value, baselineValue), better: isBetterOrEqual(metric, value, baselineValue) && value !== baselineValue})
      }
    }
  }
  return out
}

/** A small RFC 4180 CSV parser (quoted fields, doubled quotes, CRLF). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = []
  let row: string[] = []
  let field = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"'
        i++
      } else if (c === '"') quoted = false
      else field += c
    } else if (c === '"') quoted = true
    else if (c === ',') {
      row.push(field)
      field = ''
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++
      row.push(field)
      if (row.some((f) => f !== '')) rows.push(row)
      row = []
      field = ''
    } else field += c
  }
  row.push(field)
  if (row.some((f) => f !== '')) rows.push(row)
  return rows
}

const PREFERRED_METRICS = ['nrmse', 'rel_l2', 'rmse', 'mse', 'mae']

/** The champion comparison, or a note saying why there is none. Missing file: a note, not an error. */
export async function compareWithChampion(
  leaderboardPath: string,
  runId: string,
  metrics: Record<string, number>,
): Promise<{champion?: ChampionComparison; note?: string}> {
  let text: string
  try {
    text = await readFile(leaderboardPath, 'utf8')
  } catch {
    return {note: `no leaderboard at ${leaderboardPath}`}
  }
  const [header, ...body] = parseCsv(text)
  if (!header || body.length === 0) return {note: `the leaderboard ${leaderboardPath} has no rows`}
  const col = (name: string) => {
    const i = header.indexOf(`metric:${name}`)
    return i >= 0 ? i : header.indexOf(name)
  }
  const runCol = header.indexOf('run_id')
  const labelCol = header.indexOf('label')
  const candidates = [...PREFERRED_METRICS, ...Object.keys(metrics).sort()]
  const metric = candidates.find((m) => metrics[m] !== undefined && col(m) >= 0)
  if (!metric) return {note: `the leaderboard ${leaderboardPath} shares no metric with this run`}
  const c = col(metric)
  let best: {run_id: string; value: number; label?: string} | undefined
  for (const row of body) {
    const id = runCol >= 0 ? row[runCol] ?? '' : ''
    if (id === runId) continue
    const value = Number(row[c])
    if (row[c] === undefined || row[c].trim() === '' || !Number.isFinite(value)) continue
    if (!best || !isBetterOrEqual(metric, best.value, value)) best = {run_id: id || '(unnamed)', value, ...(labelCol >= 0 && row[labelCol] ? {label: row[labelCol]} : {})}
  }
  if (!best) return {note: `no other run on the leaderboard ${leaderboardPath} has ${metric}`}
  const value = metrics[metric]
  return {
    champion: {
      leaderboard: leaderboardPath,
      metric,
      value,
      champion: best,
      improvementPct: improvementPct(metric, value, best.value),
      beatsChampion: isBetterOrEqual(metric, value, best.value),
      rows: body.length,
    },
  }
}

/** The metrics that stand for the run: a full evaluation's first, then the other files', then the summary's. */
export function primaryMetrics(results: EvalResults[]): Record<string, number> {
  const ranked = [...results].sort((a, b) => Number(/full/i.test(b.source)) - Number(/full/i.test(a.source)))
  const out: Record<string, number> = {}
  for (const r of ranked.reverse()) Object.assign(out, r.metrics)
  return out
}

/** TTC vs no-TTC nrmse improvement (upstream: eval/ttc_nrmse vs eval/baseline_nrmse or eval/nrmse). */
export function ttcImprovement(results: EvalResults[]): number | undefined {
  for (const r of results) {
    const ttc = r.metrics.ttc_nrmse
    const base = r.metrics.nrmse ?? r.baselines.baseline?.nrmse
    if (ttc !== undefined && base !== undefined && base !== 0) return ((base - ttc) / base) * 100
  }
  return undefined
}
