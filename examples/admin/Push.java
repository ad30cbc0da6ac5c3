// Mints a client token for a user, then pushes a message to that user (docs/admin-api.md).
// Java 17+, single file, JDK only (java.net.http, javax.crypto): run it with `java Push.java`.
//
//   java Push.java              WXGATE_URL (default http://127.0.0.1:3000), WXGATE_KEY_ID,
//                               WXGATE_KEY_SECRET (default local mode's key), WXGATE_USER (default demo-user)
//   java Push.java --selftest   prints the signature of the documented worked example
//
// Prints each answer as `METHOD PATH -> STATUS BODY`; exits 1 on a non-2xx answer.
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.HexFormat;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

public class Push {
    static final HexFormat HEX = HexFormat.of();

    /** hex(HMAC_SHA256(secret, METHOD\nPATH\nQUERY\nTIMESTAMP\nNONCE\nhex(SHA256(body)))) */
    static String sign(String secret, String method, String path, String query, long timestamp, String nonce, byte[] body) throws Exception {
        String bodyHash = HEX.formatHex(MessageDigest.getInstance("SHA-256").digest(body));
        String stringToSign = String.join("\n", method, path, query, Long.toString(timestamp), nonce, bodyHash);
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(secret.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
        return HEX.formatHex(mac.doFinal(stringToSign.getBytes(StandardCharsets.UTF_8)));
    }

    static String env(String name, String fallback) {
        String value = System.getenv(name);
        return value == null || value.isEmpty() ? fallback : value;
    }

    static final String BASE_URL = env("WXGATE_URL", "http://127.0.0.1:3000").replaceAll("/+$", "");
    static final String KEY_ID = env("WXGATE_KEY_ID", "local");
    static final String SECRET = env("WXGATE_KEY_SECRET", "local-dev-admin-secret");
    static final String USER = env("WXGATE_USER", "demo-user");
    // HTTP/1.1: the default (HTTP/2) would try an h2c upgrade on plain http:// URLs.
    static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();
    static final SecureRandom RANDOM = new SecureRandom();

    static String call(String method, String pathWithQuery, String json) throws Exception {
        URI uri = URI.create(BASE_URL + pathWithQuery);
        byte[] body = json.getBytes(StandardCharsets.UTF_8); // sign exactly the bytes sent
        long timestamp = System.currentTimeMillis() / 1000;
        byte[] nonceBytes = new byte[16];
        RANDOM.nextBytes(nonceBytes);
        String nonce = HEX.formatHex(nonceBytes);
        String query = uri.getRawQuery() == null ? "" : uri.getRawQuery();
        HttpRequest.Builder request = HttpRequest.newBuilder(uri)
            .timeout(Duration.ofSeconds(30))
            .header("X-Wxgate-Key", KEY_ID)
            .header("X-Wxgate-Timestamp", Long.toString(timestamp))
            .header("X-Wxgate-Nonce", nonce)
            .header("X-Wxgate-Signature", sign(SECRET, method, uri.getRawPath(), query, timestamp, nonce, body));
        if (body.length > 0) request.header("Content-Type", "application/json");
        request.method(method, body.length > 0 ? HttpRequest.BodyPublishers.ofByteArray(body) : HttpRequest.BodyPublishers.noBody());
        HttpResponse<String> response = HTTP.send(request.build(), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
        System.out.println(method + " " + pathWithQuery + " -> " + response.statusCode() + " " + response.body());
        if (response.statusCode() / 100 != 2) System.exit(1);
        return response.body();
    }

    public static void main(String[] args) throws Exception {
        if (args.length == 1 && args[0].equals("--selftest")) {
            System.out.println(sign("local-dev-admin-secret", "POST", "/v1/push", "a=1", 1700000000L, "abcdefabcdefabcdef",
                "{\"x\":1}".getBytes(StandardCharsets.UTF_8)));
            return;
        }
        // User ids are [A-Za-z0-9_.:@-], so they go into JSON as they are; use your JSON library for anything else.
        String answer = call("POST", "/v1/tokens", "{\"userId\":\"" + USER + "\"}");
        Matcher token = Pattern.compile("\"token\"\\s*:\\s*\"([^\"]+)\"").matcher(answer);
        if (!token.find()) throw new IllegalStateException("no token in " + answer);
        // A client connects with it: wss://<WebSocket API>/?token=<token.group(1)>
        call("POST", "/v1/push", "{\"to\":{\"users\":[\"" + USER + "\"]},\"body\":{\"text\":\"hello from java\"}}");
    }
}
