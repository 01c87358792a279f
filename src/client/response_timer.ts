/**
 * The responseTimeout of one request: it fires when the backend stays silent that long, not
 * when the response's consumer is the one not reading.
 * @module
 */

/** What the timer asks of its request. */
export interface TimerOwner {
  /** The request is over (the timer should have been stopped; a late fire is ignored). */
  readonly finished: boolean;
  /** The response body's consumer is not keeping up: the silence is not the backend's. */
  readonly full: boolean;
  /** The backend sent nothing for the whole timeout. */
  timedOut(): void;
}

/** One timer per request, re-armed only when it fires early: no timer churn per record. */
export class ResponseTimer {
  readonly #owner: TimerOwner;
  readonly #timeout: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastActivity = Date.now();

  /** Starts counting `timeout` ms (greater than 0) from now. */
  constructor(owner: TimerOwner, timeout: number) {
    this.#owner = owner;
    this.#timeout = timeout;
    this.#arm(timeout);
  }

  /** Something moved: the silence counts from now. */
  touch(): void {
    this.#lastActivity = Date.now();
  }

  /** The request is over or starts again elsewhere. */
  stop(): void {
    clearTimeout(this.#timer);
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(() => this.#check(), ms);
  }

  #check(): void {
    const owner = this.#owner;
    if (owner.finished) return;
    if (owner.full) this.#lastActivity = Date.now();
    const idle = Date.now() - this.#lastActivity;
    if (idle < this.#timeout) return this.#arm(this.#timeout - idle);
    owner.timedOut();
  }
}
