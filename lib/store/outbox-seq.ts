// Orders outbox entries. Within a process a counter breaks ties inside one millisecond; a
// command resumed in another process runs later, so the clock orders it after.
let counter = 0;

export function nextOutboxSeq(now: number = Date.now()): number {
  counter = (counter + 1) % 1000;
  return now * 1000 + counter;
}
