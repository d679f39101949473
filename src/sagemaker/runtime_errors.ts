// Errors as the SageMaker runtime puts them on the wire (restJson1): the status of the modeled
// error, `x-amzn-errortype` naming it, and a JSON body with its members, so that the AWS SDK
// raises the same class (ModelError, ValidationError, ...) as it does against AWS.

export const ACCOUNT_ID = '000000000000';
export const REGION = 'us-east-1';

export interface RuntimeError {
  status: number;
  type: string;                   // x-amzn-errortype: the SDK's exception class name
  body: Record<string, unknown>;  // the exception's members
}

export function logGroup(endpointName: string): string {
  return `/aws/sagemaker/Endpoints/${endpointName}`;
}

/**
 * The container answered non-2xx: HTTP 424 ModelError, whose message has the shape AWS uses
 * ("Received client error (400) from primary with message "...". See ... for more information.").
 */
export function modelError(endpointName: string, originalStatus: number, originalMessage: string): RuntimeError {
  const kind = originalStatus >= 500 ? 'server' : 'client';
  const group = logGroup(endpointName);
  const console = `https://${REGION}.console.aws.amazon.com/cloudwatch/home?region=${REGION}#logEventViewer:group=${group}`;
  return {
    status: 424,
    type: 'ModelError',
    body: {
      ErrorCode: `${kind.toUpperCase()}_ERROR_FROM_MODEL`,
      LogStreamArn: `arn:aws:logs:${REGION}:${ACCOUNT_ID}:log-group:${group}`,
      Message: `Received ${kind} error (${originalStatus}) from primary with message "${originalMessage}". ` +
        `See ${console} in account ${ACCOUNT_ID} for more information.`,
      OriginalMessage: originalMessage,
      OriginalStatusCode: originalStatus,
    },
  };
}

/** The container could not be reached or broke off before answering. */
export function modelUnreachable(endpointName: string, reason: string): RuntimeError {
  return {
    status: 424,
    type: 'ModelError',
    body: {
      LogStreamArn: `arn:aws:logs:${REGION}:${ACCOUNT_ID}:log-group:${logGroup(endpointName)}`,
      Message: `Failed to get a response from container primary: ${reason}`,
    },
  };
}

/** The target's /ping is not 200 yet (the SDK retries 429s with backoff). */
export function modelNotReady(message: string): RuntimeError {
  return { status: 429, type: 'ModelNotReadyException', body: { Message: message } };
}

export function validationError(message: string): RuntimeError {
  return { status: 400, type: 'ValidationError', body: { Message: message } };
}

export function internalFailure(message: string): RuntimeError {
  return { status: 500, type: 'InternalFailure', body: { Message: message } };
}
