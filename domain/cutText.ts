/**
 * Text a client or a file chose, cut before it is kept or echoed: past `max` characters, the start and
 * how long it was. Bounds what one request or line can make the platform store or send back.
 */
export const cutText = (text: string, max: number) => text.length <= max ? text : `${text.slice(0, max)}… (${text.length} characters)`
