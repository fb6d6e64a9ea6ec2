package io.duet.proxy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.duet.cluster.Settings;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

class ChatTemplateTest {

  private final ChatTemplate llama2 = ChatTemplate.forName(ChatTemplate.LLAMA2);
  private final ChatTemplate plain = ChatTemplate.forName(ChatTemplate.PLAIN);

  @Test
  void llama2RendersLikeRunC() {
    assertEquals("[INST] Hello [/INST]", llama2.render(List.of(ChatMessage.user("Hello"))));
    assertEquals("[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHello [/INST]", llama2.render(List.of(
        ChatMessage.system("Be brief."), ChatMessage.user("Hello"))));
  }

  @Test
  void llama2MultiTurn() {
    assertEquals("[INST] <<SYS>>\nS\n<</SYS>>\n\nU1 [/INST] A1 [INST] U2 [/INST]",
        llama2.render(List.of(ChatMessage.system("S"), ChatMessage.user("U1"),
            ChatMessage.assistant("A1"), ChatMessage.user("U2"))));
    assertEquals("[INST] a\nb [/INST]", llama2.render(List.of(ChatMessage.user("a"),
        ChatMessage.user("b"))));
    assertThrows(IllegalArgumentException.class, () -> llama2.render(List.of(
        ChatMessage.assistant("A"), ChatMessage.user("U"))));
  }

  @Test
  void plainRendersRolePrefixedLines() {
    assertEquals("System: S\nUser: U1\nAssistant: A1\nUser: U2\nAssistant:",
        plain.render(List.of(ChatMessage.system("S"), ChatMessage.user("U1"),
            ChatMessage.assistant("A1"), ChatMessage.user("U2"))));
  }

  /**
   * The prompts DeepSeek-V3's own Jinja template renders (jinja2, as transformers runs it, by
   * {@code chat-templates/render-deepseek-v3.py}) for system prompts, multi-turn conversations,
   * repeated roles and a final user turn.
   */
  @Test
  void deepSeekV3RendersAsItsJinjaTemplate() throws IOException {
    ChatTemplate deepSeek = ChatTemplate.forName(ChatTemplate.DEEPSEEK_V3);
    JsonArray conversations;
    try (InputStream in = getClass().getResourceAsStream("/chat-templates/deepseek-v3.json")) {
      conversations = new JsonObject(new String(in.readAllBytes(), StandardCharsets.UTF_8))
          .getJsonArray("conversations");
    }
    assertEquals(10, conversations.size());
    for (int i = 0; i < conversations.size(); i++) {
      JsonObject conversation = conversations.getJsonObject(i);
      List<ChatMessage> messages = conversation.getJsonArray("messages").stream()
          .map(m -> (JsonObject) m)
          .map(m -> new ChatMessage(m.getString("role"), m.getString("content"))).toList();
      assertEquals(conversation.getString("prompt"), deepSeek.render(messages),
          "conversation " + i);
    }
  }

  @Test
  void registry() {
    assertEquals(List.of("deepseek-v3", "llama2", "plain"), ChatTemplate.names());
    assertEquals(String.join(", ", ChatTemplate.names()),
        Settings.MODEL_CHAT_TEMPLATE.type().range(), "the setting offers every template");
    assertEquals(null, new ProxyOptions().getChatTemplate(), "by default the model's own");
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> ChatTemplate.forName("chatml"));
    assertEquals("unknown chat template 'chatml'; known: deepseek-v3, llama2, plain",
        e.getMessage());
  }

  @Test
  void optionsRoundTripThroughJson() {
    ProxyOptions options = new ProxyOptions().setPort(7100).setApiKey("k")
        .setChatTemplate(ChatTemplate.PLAIN).setChatMaxTokens(100);
    JsonObject json = options.toJson();
    assertEquals(json, new ProxyOptions(json).toJson());
    assertEquals(ProxyOptions.DEFAULT_PORT, new ProxyOptions(new JsonObject()).getPort());
  }
}
