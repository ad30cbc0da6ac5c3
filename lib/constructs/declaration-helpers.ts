/** Typed `Object.entries` for the declaration's records: keys keep their literal type, absent entries are skipped. */
export function entriesOf<K extends string, V>(record: Readonly<Partial<Record<K, V>>>): Array<[K, V]> {
  return (Object.entries(record) as Array<[K, V | undefined]>).filter((e): e is [K, V] => e[1] !== undefined);
}

/** Construct id for a declared id: `wsConnect` -> `WsConnect`, `connections` -> `Connections`. */
export function constructIdOf(declaredId: string): string {
  return declaredId.charAt(0).toUpperCase() + declaredId.slice(1);
}
