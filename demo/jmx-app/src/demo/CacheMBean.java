package demo;

import javax.management.openmbean.CompositeData;
import javax.management.openmbean.TabularData;

/**
 * A standard MBean returning open data as-is: {@code Stats} is CompositeData, {@code Shards} a
 * TabularData indexed by shard id.
 */
public interface CacheMBean {
    CompositeData getStats();

    TabularData getShards();

    int getCapacity();

    /** Always fails: a scrape must skip it and keep the rest. */
    long getBroken();
}
