package io.duet.cluster.impl.types;

import io.duet.cluster.SettingType;
import java.util.Optional;

/** A value of another type, or unset (null or blank): {@link Optional#empty()}. */
public final class OptionalType<V> extends DescribedType<Optional<V>> {

  private final SettingType<V> type;

  public OptionalType(SettingType<V> type) {
    super(type.name(), type.range(), type.expected() + " or nothing");
    this.type = type;
  }

  @Override
  public Optional<V> decode(Object raw) {
    return RawValues.isUnset(raw) ? Optional.empty() : Optional.of(type.decode(raw));
  }

  @Override
  public Object encode(Optional<V> value) {
    return value.map(type::encode).orElse(null);
  }

  @Override
  public Object fromText(String text) {
    return text.isBlank() ? null : type.fromText(text);
  }
}
