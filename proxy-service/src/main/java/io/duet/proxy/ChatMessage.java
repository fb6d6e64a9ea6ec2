package io.duet.proxy;

import java.util.Objects;

/**
 * One message of a chat conversation, its content reduced to text.
 *
 * @param role {@link #SYSTEM}, {@link #USER} or {@link #ASSISTANT}
 */
public record ChatMessage(String role, String content) {

  public static final String SYSTEM = "system";
  public static final String USER = "user";
  public static final String ASSISTANT = "assistant";

  public ChatMessage {
    Objects.requireNonNull(role, "role");
    Objects.requireNonNull(content, "content");
    if (!role.equals(SYSTEM) && !role.equals(USER) && !role.equals(ASSISTANT)) {
      throw new IllegalArgumentException("unknown chat role: " + role);
    }
  }

  public static ChatMessage system(String content) {
    return new ChatMessage(SYSTEM, content);
  }

  public static ChatMessage user(String content) {
    return new ChatMessage(USER, content);
  }

  public static ChatMessage assistant(String content) {
    return new ChatMessage(ASSISTANT, content);
  }
}
