import {mkdirSync} from 'node:fs'
import {createRequire} from 'node:module'
import {dirname} from 'node:path'
import type {Logger} from 'pino'
import type pinoModule from 'pino'

import {redactSecrets} from './secrets.js'

export type {Logger} from 'pino'

export interface LoggerOptions {
  /** Minimum level; `debug` with --verbose. */
  level?: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent'
  /** JSON lines go here (e.g. `<run_dir>/logs/ups.jsonl`). */
  file?: string
  /** Human-readable lines to stderr (default true). */
  stderr?: boolean
}

const LEVEL_NAMES: Record<number, string> = {10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal'}

/** A pino stream printing `level: message key=value` for people; results stay on stdout. */
function humanStream(out: NodeJS.WritableStream): {write(line: string): void} {
  return {
    write(line: string) {
      let record: Record<string, unknown>
      try {
        record = JSON.parse(line)
      } catch {
        out.write(line)
        return
      }
      const {level, msg, time: _t, pid: _p, hostname: _h, ...rest} = record
      const name = LEVEL_NAMES[level as number] ?? 'info'
      const extras = Object.entries(rest)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ')
      const prefix = name === 'info' ? '' : `${name}: `
      out.write(`${prefix}${String(msg ?? '')}${extras ? ' ' + extras : ''}\n`)
    },
  }
}

/**
 * JSON lines to a file and human lines to stderr. Secrets are redacted from every record,
 * whatever field they hide in, because logs end up in run directories and incident reports.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const pino = loadPino()
  const level = options.level ?? 'info'
  const streams: pinoModule.StreamEntry[] = []
  if (options.stderr !== false && level !== 'silent') streams.push({level, stream: humanStream(process.stderr)})
  if (options.file) {
    mkdirSync(dirname(options.file), {recursive: true})
    streams.push({level: 'trace', stream: pino.destination({dest: options.file, sync: true, mkdir: true})})
  }
  return pino(
    {
      level: options.file ? 'trace' : level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      hooks: {
        streamWrite: (line) => redactSecrets(line),
      },
    },
    pino.multistream(streams),
  )
}

/** A logger that drops everything: the default for modules called from tests. */
export function silentLogger(): Logger {
  return loadPino()({level: 'silent'})
}

// pino is loaded on first use, so commands that never log (validate, --help) start faster.
let pinoCache: typeof pinoModule | undefined
function loadPino(): typeof pinoModule {
  pinoCache ??= createRequire(import.meta.url)('pino') as typeof pinoModule
  return pinoCache
}
