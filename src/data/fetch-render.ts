/**
 * How `ups data fetch` shows itself: one updating progress line on a terminal, a plain line per
 * 10% otherwise (logs, CI), and a short summary of the result. Pure apart from the `write` given.
 */
import type {DataFetchResult, FetchEvent} from './fetch.js'

export interface ProgressSink {
  onEvent(event: FetchEvent): void
  /** Ends the updating line (call on success and on error). */
  done(): void
}

const UNKNOWN_TOTAL_STEP = 256 * 1024 ** 2

export function createProgressRenderer(options: {isTTY: boolean; write: (text: string) => void; now: () => number}): ProgressSink {
  const {isTTY, write, now} = options
  let lineOpen = false
  let lastDraw = 0
  let lastStep = -1

  const line = (text: string) => {
    // Keep the last progress state on screen: it says how far the transfer got.
    if (lineOpen) write('\n')
    lineOpen = false
    write(text + '\n')
  }

  return {
    onEvent(event) {
      switch (event.type) {
        case 'start': {
          const from = event.offset > 0 ? ` (resuming at ${formatBytes(event.offset)})` : ''
          line(`Fetching ${event.source} -> ${event.path}${from}`)
          lastStep = -1
          break
        }
        case 'progress': {
          const pct = event.total ? Math.min(100, (event.bytes / event.total) * 100) : undefined
          const text = `${formatBytes(event.bytes)}${event.total ? ` / ${formatBytes(event.total)} ${pct!.toFixed(1)}%` : ''}  ${formatBytes(event.rateBps)}/s${eta(event)}`
          if (isTTY) {
            const t = now()
            if (t - lastDraw < 100 && !(event.total && event.bytes >= event.total)) return
            lastDraw = t
            write('\r\x1b[2K' + text)
            lineOpen = true
            return
          }
          const step = pct === undefined ? Math.floor(event.bytes / UNKNOWN_TOTAL_STEP) : Math.floor(pct / 10)
          if (step > lastStep) {
            lastStep = step
            line(text)
          }
          break
        }
        case 'retry':
          line(`Retry ${event.retry} of ${event.retries} in ${(event.delayMs / 1000).toFixed(1)} s: ${event.reason}`)
          break
        case 'note':
          line(event.message)
          break
        case 'verify':
          line(`Verifying ${event.algorithm} of ${event.path}`)
          break
      }
    },
    done() {
      if (lineOpen) write('\n')
      lineOpen = false
    },
  }
}

function eta(event: Extract<FetchEvent, {type: 'progress'}>): string {
  if (!event.total || event.rateBps <= 0 || event.bytes >= event.total) return ''
  return `  ETA ${formatDuration((event.total - event.bytes) / event.rateBps)}`
}

export function renderDataFetch(result: DataFetchResult): string {
  const how = result.skipped
    ? result.verified
      ? 'Already present and verified'
      : 'Already present (not verified: pass --checksum to check it, --force to fetch it again)'
    : result.resumed
      ? `Fetched (resumed) in ${result.attempts} attempt${result.attempts === 1 ? '' : 's'}`
      : `Fetched in ${result.attempts} attempt${result.attempts === 1 ? '' : 's'}`
  const lines = [`${how}: ${result.path} (${formatBytes(result.bytes)})`]
  if (result.checksum) lines.push(`${result.verified ? '✅ checksum matches' : 'checksum'}: ${result.checksum}`)
  return lines.join('\n')
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = n
  let i = 0
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024
    i++
  }
  return i === 0 ? `${Math.round(value)} B` : `${value.toFixed(1)} ${units[i]}`
}

function formatDuration(seconds: number): string {
  const s = Math.round(seconds)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}
