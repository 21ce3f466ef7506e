import {randomBytes} from 'node:crypto'
import {mkdir, open, readdir, rename, rm, stat} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'

/**
 * Writes a file so that a crash at any moment leaves either the old or the new content:
 * a temp file in the same folder (same filesystem, so rename is atomic), fsync, rename, fsync dir.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = dirname(path)
  await mkdir(dir, {recursive: true})
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  const handle = await open(tmp, 'w', mode)
  try {
    await handle.writeFile(data)
    await handle.sync()
  } catch (error) {
    await handle.close()
    await rm(tmp, {force: true})
    throw error
  }
  await handle.close()
  try {
    await rename(tmp, path)
  } catch (error) {
    await rm(tmp, {force: true})
    throw error
  }
  await syncDir(dir)
}

export async function writeJsonAtomic(path: string, value: unknown, mode = 0o644): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n', mode)
}

/** Makes a rename durable: without it a power loss can forget the new directory entry. */
export async function syncDir(dir: string): Promise<void> {
  let handle
  try {
    handle = await open(dir, 'r')
    await handle.sync()
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  } finally {
    await handle?.close()
  }
}

const ATOMIC_TEMP = /^\.(.+)\.(\d+)\.[0-9a-f]{8}\.tmp$/

/** The pid of the process that wrote an atomic temp file, or null for any other name. */
export function atomicTempPid(name: string): number | null {
  const m = ATOMIC_TEMP.exec(name)
  return m ? Number(m[2]) : null
}

/**
 * Removes writeFileAtomic temp files under `root` (recursively) whose writer is gone: a kill -9
 * mid-write leaves them. Only call it holding the folder's lock. Checkpoint swap folders
 * (`.<name>.ckpt.<tag>.tmp`) are not matched: resume reads them. `minAgeMs`: also leave temps
 * modified more recently than that. Returns the removed paths.
 */
export async function removeStaleTempFiles(root: string, isAlive: (pid: number) => boolean, options: {minAgeMs?: number; nowMs?: number} = {}): Promise<string[]> {
  const removed: string[] = []
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, {withFileTypes: true}).catch(() => [])
    for (const e of entries) {
      const path = join(dir, e.name)
      if (e.isDirectory()) await walk(path)
      else if (e.isFile()) {
        const pid = atomicTempPid(e.name)
        if (pid === null || pid === process.pid || isAlive(pid)) continue
        if (options.minAgeMs !== undefined) {
          const mtime = await stat(path).then((s) => s.mtimeMs, () => null)
          if (mtime === null || (options.nowMs ?? Date.now()) - mtime < options.minAgeMs) continue
        }
        await rm(path, {force: true})
        removed.push(path)
      }
    }
  }
  await walk(root)
  return removed
}
