/**
 * Manifests in PDEBench's fields (path, size_bytes, checksum, checksum_type; optional url):
 * a JSON array, a JSON object with `files`, JSON lines, or CSV with a header row.
 */
import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {readFile} from 'node:fs/promises'
import {basename, relative} from 'node:path'

import {ExitCode, UserError} from '../util/errors.js'

export interface ManifestEntry {
  path: string
  size_bytes?: number
  checksum?: string
  checksum_type?: string
  url?: string
}

export async function loadManifest(path: string): Promise<ManifestEntry[]> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new UserError(`Manifest ${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'}).`, {
      code: 'DATA_MANIFEST_UNREADABLE', exitCode: ExitCode.USAGE, hint: 'Check the --manifest path.', cause: error,
    })
  }
  const bad = (why: string) =>
    new UserError(`Manifest ${path}: ${why}`, {
      code: 'DATA_MANIFEST_INVALID', exitCode: ExitCode.USAGE,
      hint: 'A manifest is JSON (array or {"files": [...]}), JSON lines, or CSV with columns path,size_bytes,checksum,checksum_type.',
    })
  const trimmed = text.trim()
  let rows: Array<Record<string, unknown>>
  if (trimmed.startsWith('[') || trimmed.startsWith('{')) {
    try {
      const parsed = JSON.parse(trimmed)
      rows = Array.isArray(parsed) ? parsed : Array.isArray(parsed.files) ? parsed.files : [parsed]
    } catch {
      try {
        rows = trimmed.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l))
      } catch (error) {
        throw bad(`not valid JSON or JSON lines (${(error as Error).message}).`)
      }
    }
  } else {
    const lines = trimmed.split(/\r?\n/).filter((l) => l.trim())
    const header = (lines.shift() ?? '').split(',').map((h) => h.trim())
    if (!header.includes('path')) throw bad('the CSV header has no "path" column.')
    rows = lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [header[i], v.trim()])))
  }
  return rows.map((r, i) => {
    if (typeof r.path !== 'string' || !r.path) throw bad(`entry ${i + 1} has no "path".`)
    const size = r.size_bytes === undefined || r.size_bytes === '' ? undefined : Number(r.size_bytes)
    if (size !== undefined && !Number.isFinite(size)) throw bad(`entry ${i + 1} (${r.path}) has size_bytes "${String(r.size_bytes)}", not a number.`)
    return {
      path: r.path,
      size_bytes: size,
      checksum: typeof r.checksum === 'string' && r.checksum ? r.checksum.toLowerCase() : undefined,
      checksum_type: typeof r.checksum_type === 'string' && r.checksum_type ? r.checksum_type.toLowerCase() : r.checksum ? 'md5' : undefined,
      url: typeof r.url === 'string' && r.url ? r.url : undefined,
    }
  })
}

/** The entry for a file: by its path relative to the data root, else by its base name. */
export function findManifestEntry(entries: ManifestEntry[], file: string, root: string): ManifestEntry | undefined {
  const rel = relative(root, file)
  return entries.find((e) => e.path === rel) ?? entries.find((e) => basename(e.path) === basename(file))
}

/** Streams the file through the hash (md5, sha1, sha256): files are GBs. */
export async function fileChecksum(path: string, type: string): Promise<string> {
  const hash = createHash(type)
  for await (const chunk of createReadStream(path, {highWaterMark: 4 << 20})) hash.update(chunk as Buffer)
  return hash.digest('hex')
}
