package io.duet.proxy.impl;

import io.duet.proxy.ChatTemplate;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/** The registry behind {@link ChatTemplate#forName}. */
public final class ChatTemplates {

  private static final Map<String, Supplier<ChatTemplate>> TEMPLATES = Map.of(
      ChatTemplate.LLAMA2, Llama2ChatTemplate::new,
      ChatTemplate.PLAIN, PlainChatTemplate::new,
      ChatTemplate.DEEPSEEK_V3, DeepSeekV3ChatTemplate::new);

  private ChatTemplates() {
  }

  public static ChatTemplate forName(String name) {
    Supplier<ChatTemplate> template = name == null ? null : TEMPLATES.get(name);
    if (template == null) {
      throw new IllegalArgumentException("unknown chat template '" + name + "'; known: "
          + String.join(", ", names()));
    }
    return template.get();
  }

  public static List<String> names() {
    return TEMPLATES.keySet().stream().sorted().toList();
  }
}
