// A conditional write whose condition may fail: true when it was written, false when DynamoDB
// refused it on its condition (someone else got there first); any other error is thrown.
// Matched by name, so the SDK's error class and a test double of it are treated alike.

export async function conditionalWrite(write: Promise<unknown>): Promise<boolean> {
  try {
    await write;
    return true;
  } catch (e) {
    if ((e as Error | undefined)?.name === 'ConditionalCheckFailedException') return false;
    throw e;
  }
}
