package io.duet.cluster.impl.types;

import io.vertx.core.json.JsonArray;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Members to join, each {@code host} or {@code host:port}: a YAML list or one comma-separated
 * string. Items are trimmed and blank ones dropped. An IPv6 address (more than one colon) is
 * taken as a host.
 */
public final class HostPortListType extends DescribedType<List<String>> {

  public static final HostPortListType INSTANCE = new HostPortListType();

  private HostPortListType() {
    super("list", "host or host:port, each",
        "a list of host or host:port (a YAML list or one comma-separated string)");
  }

  @Override
  public List<String> decode(Object raw) {
    List<?> items = RawValues.items(raw);
    if (items == null) {
      throw invalid();
    }
    List<String> members = new ArrayList<>();
    for (Object item : items) {
      String member = RawValues.text(item);
      if (member == null && item != null) {
        throw invalid();
      }
      if (member != null && !member.isEmpty()) {
        members.add(requireHostPort(member));
      }
    }
    return List.copyOf(members);
  }

  private String requireHostPort(String member) {
    int colon = member.lastIndexOf(':');
    if (colon >= 0 && member.indexOf(':') == colon) {
      String port = member.substring(colon + 1);
      if (colon == 0 || !port.matches("\\d{1,5}") || Integer.parseInt(port) > 65535) {
        throw invalid();
      }
    }
    return member;
  }

  @Override
  public Object encode(List<String> value) {
    return new JsonArray(new ArrayList<>(value));
  }

  /** The items, unchecked: validation reports a bad one with the variable or flag. */
  @Override
  public Object fromText(String text) {
    return encode(Arrays.stream(text.split(",")).map(String::trim)
        .filter(item -> !item.isEmpty()).toList());
  }
}
