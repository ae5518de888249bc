// Injectable failures for the fake driver: a test arms a method with an error, and the fake
// throws it at the start of that method before touching any guest, the way a hypervisor that
// refuses a request leaves nothing half-done.

interface ArmedFault {
  error: Error;
  remaining: number;
}

export class FaultPlan {
  private readonly armed = new Map<string, ArmedFault[]>();

  /**
   * The next `times` calls of `method` (the driver's camelCase name, e.g. `spawn`, `powerOff`)
   * throw `error`. Faults armed for one method fire in the order they were armed.
   */
  failNext(method: string, error: Error, times = 1): this {
    if (!Number.isInteger(times) || times < 1)
      throw new RangeError('times must be a positive integer');
    const queue = this.armed.get(method) ?? [];
    queue.push({ error, remaining: times });
    this.armed.set(method, queue);
    return this;
  }

  /** Every call of `method` throws `error` until cleared. */
  failAlways(method: string, error: Error): this {
    const queue = this.armed.get(method) ?? [];
    queue.push({ error, remaining: Number.POSITIVE_INFINITY });
    this.armed.set(method, queue);
    return this;
  }

  /** How many more calls of `method` will fail. */
  pending(method: string): number {
    return (this.armed.get(method) ?? []).reduce((sum, fault) => sum + fault.remaining, 0);
  }

  clear(method?: string): void {
    if (method === undefined) this.armed.clear();
    else this.armed.delete(method);
  }

  /** Throws the armed error for `method`, if any, and uses it up. */
  check(method: string): void {
    const queue = this.armed.get(method);
    const fault = queue?.[0];
    if (queue === undefined || fault === undefined) return;
    fault.remaining -= 1;
    if (fault.remaining <= 0) queue.shift();
    if (queue.length === 0) this.armed.delete(method);
    throw fault.error;
  }
}
