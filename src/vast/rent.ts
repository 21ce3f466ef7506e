/**
 * Renting one instance without renting two or leaving one behind. `create` is attempted once per
 * offer (the client's own retries are off, see createInstanceArgs); when it fails, times out or
 * answers garbage, Vast may still have created the instance, so ups looks for the launch's unique
 * label before deciding anything. An offer taken meanwhile (404 no_such_ask) moves on to the next.
 */
import {ExitCode, UserError} from '../util/errors.js'
import type {CreateInstanceRequest, Provider} from './provider.js'
import type {Instance, Offer} from './types.js'

export interface RentOptions {
  /** Everything but the offer; `label` must be unique to this launch. */
  request: Omit<CreateInstanceRequest, 'offerId'> & {label: string}
  /** Candidates, best first (the cheapest match, then the next ones). */
  offers: Offer[]
  /** Instances that carried the label before this launch (a label given by the user): never adopted. */
  knownIds?: number[]
  /** How often to look for the label when the create's outcome is unknown (default 3). */
  lookups?: number
  /** Between those looks (default 10 s: a slow create may show up late). */
  lookupIntervalMs?: number
  sleep: (ms: number) => Promise<void>
  onNote?: (message: string) => void
}

export interface RentAttempt {
  offerId: number
  /** created; adopted (create failed but the instance exists); taken (no_such_ask); failed. */
  outcome: 'created' | 'adopted' | 'taken' | 'failed'
  error?: string
}

export interface RentResult {
  id: number
  offer: Offer
  /** True when create failed but the instance was found by its label. */
  adopted: boolean
  attempts: RentAttempt[]
  /** Further instances found with the label (rented twice): the caller records and destroys them. */
  extras: Instance[]
  /** One line on what happened, for the launch record (null when the first create just worked). */
  note: string | null
}

/** Vast answers 404 "no_such_ask" when the offer was rented by someone else since the search. */
export function isOfferTaken(error: unknown): boolean {
  return error instanceof UserError && error.details?.status === 404 && /no_such_ask|not available/i.test(String(error.details?.msg ?? error.message))
}

/**
 * A refusal (4xx, a missing binary) means the request did nothing; anything else (timeouts,
 * 5xx, HTTP 0, unreadable output, a crash) leaves it open whether the instance exists.
 */
function outcomeUnknown(error: unknown): boolean {
  if (!(error instanceof UserError)) return true
  if (error.code === 'VAST_NOT_INSTALLED' || error.code === 'VAST_BAD_ENV' || error.code === 'VAST_UNAUTHORIZED') return false
  const status = error.details?.status
  return !(typeof status === 'number' && status >= 400 && status < 500)
}

/** Instances with the label that were not there before; polls when the outcome is unknown. */
async function findByLabel(provider: Provider, label: string, known: Set<number>, tries: number, options: RentOptions): Promise<Instance[]> {
  for (let i = 1; ; i++) {
    const found = (await provider.list()).filter((x) => x.label === label && !known.has(x.id)).sort((a, b) => a.id - b.id)
    if (found.length > 0 || i >= tries) return found
    await options.sleep(options.lookupIntervalMs ?? 10_000)
  }
}

export async function rentInstance(provider: Provider, options: RentOptions): Promise<RentResult> {
  const {label} = options.request
  const known = new Set(options.knownIds ?? [])
  const attempts: RentAttempt[] = []
  for (const offer of options.offers) {
    let createError: unknown
    try {
      const {id} = await provider.create({...options.request, offerId: offer.id})
      attempts.push({offerId: offer.id, outcome: 'created'})
      const note = attempts.length > 1 ? describe(attempts) : null
      return {id, offer, adopted: false, attempts, extras: [], note}
    } catch (error) {
      createError = error
    }
    const reason = createError instanceof Error ? createError.message : String(createError)
    const unknown = outcomeUnknown(createError)
    let found: Instance[] = []
    let looked = true
    try {
      found = await findByLabel(provider, label, known, unknown ? (options.lookups ?? 3) : 1, options)
    } catch (lookupError) {
      // A refused create did nothing: the look was a precaution, its failure changes nothing.
      looked = false
      if (unknown) {
        throw new UserError(
          `Creating the instance on offer ${offer.id} failed (${reason}), and ups could not check whether Vast created it anyway (${(lookupError as Error).message}).`,
          {
            code: 'LAUNCH_CREATE_UNKNOWN',
            hint: `Look for an instance labelled ${label} with \`ups instances list\` and destroy it (\`ups instances destroy ID --yes\`) if you do not want it; then launch again.`,
            exitCode: ExitCode.EXTERNAL,
            cause: createError,
            details: {label, offerId: offer.id},
          },
        )
      }
    }
    if (found.length > 0) {
      const [mine, ...extras] = found
      attempts.push({offerId: offer.id, outcome: 'adopted', error: reason})
      const where = options.offers.find((o) => o.machineId !== null && o.machineId === mine.machineId) ?? offer
      options.onNote?.(`create on offer ${offer.id} failed (${reason}), but instance ${mine.id} exists with label ${label}: using it`)
      return {id: mine.id, offer: where, adopted: true, attempts, extras, note: describe(attempts, mine.id)}
    }
    if (isOfferTaken(createError)) {
      attempts.push({offerId: offer.id, outcome: 'taken', error: reason})
      options.onNote?.(`offer ${offer.id} was taken before ups could rent it; trying the next offer`)
      continue
    }
    attempts.push({offerId: offer.id, outcome: 'failed', error: reason})
    if (createError instanceof UserError && !looked) throw createError
    if (createError instanceof UserError) {
      throw new UserError(`${createError.message} Nothing was rented: no instance carries the label ${label}.`, {
        code: createError.code,
        hint: createError.hint,
        exitCode: createError.exitCode,
        cause: createError,
        details: {...createError.details, label, rented: false},
      })
    }
    throw createError
  }
  const ids = attempts.map((a) => a.offerId).join(', ')
  throw new UserError(`Every offer ups tried was taken before it could be rented (${ids}); nothing was rented.`, {
    code: 'LAUNCH_OFFERS_TAKEN',
    hint: 'Offers change by the minute: look again with `ups offers` and launch again, or relax --max-price/--gpu (or drop --offer-id).',
    exitCode: ExitCode.EXTERNAL,
    details: {offers: attempts.map((a) => a.offerId)},
  })
}

function describe(attempts: RentAttempt[], adoptedId?: number): string {
  return attempts
    .map((a) =>
      a.outcome === 'taken'
        ? `offer ${a.offerId} was taken`
        : a.outcome === 'adopted'
          ? `create on offer ${a.offerId} failed (${a.error}); instance ${adoptedId} was found by its label and adopted`
          : a.outcome === 'failed'
            ? `create on offer ${a.offerId} failed (${a.error})`
            : `created on offer ${a.offerId}`,
    )
    .join('; ')
}
